"""One real testbed per test module (module scope); tests switch functions with `apply`, and the
function tests switch topology with the module-scoped `topology` fixture:

    @pytest.mark.parametrize("topology", where("timeout", service="ratings"), indirect=True, scope="module")
    def test_...(testbed, topology): ...

`where` takes the topologies from the profiles themselves, so a test runs in every topology its
function applies in, and pytest groups the tests by topology (one switch per topology and module).
"""

from __future__ import annotations

import pytest

from meshload.testbed import Testbed, profile_named
from meshload.testbed.processes import marked_processes
from meshload.testbed.topology import TOPOLOGIES


def where(function: str, **params: str) -> list[str]:
    """The topologies `function` with `params` applies in."""
    profile = profile_named(function)
    values = profile.resolve(params)
    return [topology for topology in TOPOLOGIES if profile.refusal(topology, values) is None]


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    bed = Testbed(tmp_path_factory.mktemp("tb"))
    bed.up("sidecar", fault_scale=1.0)
    state = bed.folder.load()
    assert state is not None
    mark = state["mark"]
    yield bed
    assert bed.down() == []
    assert marked_processes(mark) == [], "down left testbed processes behind"


@pytest.fixture(scope="module")
def topology(request, testbed) -> str:
    """The module's testbed moved to the topology of the test's parameter (plain `sidecar` function)."""
    testbed.set_topology(request.param, "sidecar")
    return request.param
