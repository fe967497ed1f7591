"""The engine picker: a plan goes to the engine that speaks its targets' scheme (or the one it names),
engines load only when picked, and a registration must tell the truth about its event loop."""

from __future__ import annotations

import subprocess
import sys

import pytest

from meshload.errors import PlanError
from meshload.scenarios.plan import LocustUsers
from meshload.worker.engines import auto
from meshload.worker.engines.uvloop_http import UvloopHttpEngine

from .helpers import open_plan


def test_http_and_https_targets_go_to_the_uvloop_http_engine() -> None:
    plan = open_plan(["http://127.0.0.1:1/a", "https://127.0.0.1:2/b"], 10, 1.0)
    registration = auto.registration_for(plan)
    assert registration.name == "uvloop-http"
    assert auto.event_loop_for(plan) == "asyncio"
    engine = auto.pick_engine(plan)
    assert isinstance(engine, UvloopHttpEngine) and engine.event_loop == "asyncio"
    assert auto.pick_engine(plan, "uvloop-http").event_loop == "asyncio"


def test_a_plan_goes_to_the_engine_of_its_protocol() -> None:
    assert auto.registration_for(open_plan("http://127.0.0.1:1/", 10, 1.0, http2=True)).name == "h2"
    grpc_plan = open_plan("grpcs://127.0.0.1:1/pkg.Service/Method", 10, 1.0)
    assert grpc_plan.protocol == "grpc" and auto.registration_for(grpc_plan).name == "grpc"
    assert {r.name for r in auto.ENGINES if r.event_loop == "asyncio"} == {"uvloop-http", "h2", "grpc"}
    # A locustfile's users: the Locust engine, the one on gevent (its own kind of process).
    locust_plan = open_plan("http://127.0.0.1:1/", 10, 1.0).model_copy(
        update={"locust": LocustUsers(file="shop.py", source="from locust import HttpUser\n")}
    )
    assert locust_plan.protocol == "locust" and auto.registration_for(locust_plan).name == "locust"
    assert auto.event_loop_for(locust_plan) == "gevent"
    assert [r.name for r in auto.ENGINES if r.event_loop == "gevent"] == ["locust"]


def test_an_unknown_engine_name_or_scheme_is_one_clear_error(monkeypatch) -> None:
    plan = open_plan("http://127.0.0.1:1/", 10, 1.0)
    with pytest.raises(PlanError, match="engine 'h3' does not exist; use one of uvloop-http, h2, grpc"):
        auto.registration_for(plan, "h3")
    # Plans only hold http(s) and grpc(s) targets; a scheme no engine speaks is refused by the picker too.
    ws_plan = plan.model_copy(update={"targets": (plan.targets[0].model_copy(update={"url": "ws://127.0.0.1:1"}),)})
    with pytest.raises(PlanError, match="no engine sends ws requests"):
        auto.registration_for(ws_plan)


def test_a_registration_whose_event_loop_is_wrong_fails_loudly() -> None:
    lying = auto.Registration("liar", "meshload.worker.engines.uvloop_http:UvloopHttpEngine", "gevent", ("http",))
    with pytest.raises(TypeError, match="runs on asyncio but is registered for gevent"):
        auto.load_engine(lying)


def test_picking_an_engine_imports_no_other_engine() -> None:
    """Asking which event loop a plan needs imports no engine at all (gevent and uvloop never share a
    process); picking imports only the engine picked."""
    script = (
        "import sys\n"
        "from meshload.scenarios.plan import Plan\n"
        "from meshload.worker.engines import auto\n"
        "plan = Plan(targets=[{'url': 'http://127.0.0.1:1/'}], load={'kind': 'open', 'rate': 1}, duration_s=1)\n"
        "assert auto.event_loop_for(plan) == 'asyncio'\n"
        "assert 'meshload.worker.engines.uvloop_http' not in sys.modules\n"
        "auto.pick_engine(plan)\n"
        "assert 'meshload.worker.engines.uvloop_http' in sys.modules\n"
        "assert 'gevent' not in sys.modules\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
