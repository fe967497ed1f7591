"""gRPC and HTTP/2 in plan files and command-line options: proto files compiled where the plan is made,
the request message checked against its method, and every problem one line naming file and line
(or the option)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from tests.support.grpc_servers import PROTO

from meshload.errors import PlanError, UsageError
from meshload.scenarios import load_plan_file, plan_from_options
from meshload.scenarios.grpc_calls import grpc_calls

URL = "grpc://127.0.0.1:9090/meshload.test.Echo/Unary"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A plan folder with the test service's proto under protos/."""
    (tmp_path / "protos").mkdir()
    shutil.copy(PROTO, tmp_path / "protos" / "loadtest.proto")
    return tmp_path


def _write(folder: Path, text: str) -> Path:
    path = folder / "plan.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_a_grpc_plan_file_names_its_proto_relative_to_the_file(folder: Path) -> None:
    path = _write(
        folder,
        f"""
        targets:
          - url: {URL}
            body: {{id: 3, text: hi, at: "2024-01-01T00:00:00Z"}}
          - url: grpcs://127.0.0.1:9443/meshload.test.Echo/Stream
            headers: {{x-tenant: a}}
        proto: protos/loadtest.proto
        headers: {{Authorization: token}}
        load: {{rate: 100}}
        duration: 10s
        """,
    )
    plan = load_plan_file(path)
    assert plan.protocol == "grpc" and plan.max_connections == 1  # multiplexed: one connection by default
    assert plan.grpc.proto_files == (str(folder / "protos" / "loadtest.proto"),)
    assert json.loads(plan.targets[0].body or "") == {"id": 3, "text": "hi", "at": "2024-01-01T00:00:00Z"}
    unary, stream = grpc_calls(plan)
    assert unary.schema.path == "/meshload.test.Echo/Unary" and not unary.schema.server_streaming
    assert stream.schema.server_streaming and stream.target.tls and stream.target.port == 9443
    assert unary.request == b"\x08\x03\x12\x02hi\x22\x06\x08\x80\x81\xc8\xac\x06"
    assert stream.request == b""  # no body: the empty message
    assert unary.metadata == (("authorization", "token"),)
    assert stream.metadata == (("authorization", "token"), ("x-tenant", "a"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"url: {URL[:-6]}/Nope\nproto: protos/loadtest.proto\nload: {{rate: 1}}\nduration: 1s\n",
            "plan.yaml:1: url: service 'meshload.test.Echo' has no method 'Nope'; its methods are: "
            "Stream, Unary, Upload",
        ),
        (
            f"url: {URL}\nproto: protos/loadtest.proto\nbody: {{idd: 1}}\nload: {{rate: 1}}\nduration: 1s\n",
            "plan.yaml:3: body: the request message does not fit meshload.test.EchoRequest: Message type "
            '"meshload.test.EchoRequest" has no field named "idd" at "EchoRequest".',
        ),
        (
            f"url: {URL[:-6]}/Upload\nproto: protos/loadtest.proto\nload: {{rate: 1}}\nduration: 1s\n",
            "plan.yaml:1: url: /meshload.test.Echo/Upload is client-streaming; meshload calls unary and "
            "server-streaming methods",
        ),
        (
            f"url: {URL}\nproto: protos/missing.proto\nload: {{rate: 1}}\nduration: 1s\n",
            "plan.yaml:2: proto: ",
        ),
        (
            "url: grpc://127.0.0.1:9090/Unary\nload: {rate: 1}\nduration: 1s\n",
            "plan.yaml:1: url: 'grpc://127.0.0.1:9090/Unary' does not name a method as /package.Service/Method",
        ),
        (
            f"targets:\n  - url: {URL}\n  - url: http://127.0.0.1/\nload: {{rate: 1}}\nduration: 1s\n",
            "the targets mix gRPC and HTTP URLs; a run speaks one protocol",
        ),
        (
            f"url: {URL}\nbody: '{{not json'\nload: {{rate: 1}}\nduration: 1s\n",
            "plan.yaml:2: body: the request message is not JSON",
        ),
        (
            f"url: {URL}\nheaders: {{'x!y': 1}}\nload: {{rate: 1}}\nduration: 1s\n",
            "plan.yaml:2: headers: 'x!y' is not a gRPC metadata key",
        ),
        (
            "url: http://127.0.0.1/\nproto: protos/loadtest.proto\nload: {rate: 1}\nduration: 1s\n",
            "proto files describe gRPC methods; the targets are HTTP URLs",
        ),
    ],
    ids=["method", "message", "client-streaming", "no-proto", "no-method", "mixed", "json", "metadata", "proto-http"],
)
def test_grpc_problems_name_file_line_and_key(folder: Path, text: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan_file(_write(folder, text))
    assert message in str(caught.value)


def test_a_syntax_error_in_a_proto_is_protocs_own_line(folder: Path) -> None:
    (folder / "protos" / "broken.proto").write_text('syntax = "proto3";\nmessage A { int32 x = ; }\n')
    with pytest.raises(PlanError, match=r"plan\.yaml:2: proto: protoc: \S*broken\.proto:2:\d+: Expected field number"):
        load_plan_file(_write(folder, f"url: {URL}\nproto: protos/broken.proto\nload: {{rate: 1}}\nduration: 1s\n"))


def test_http2_plan_keys(folder: Path) -> None:
    plan = load_plan_file(
        _write(
            folder,
            "url: https://127.0.0.1/\nhttp2: true\nmax_streams_per_connection: 8\nload: {rate: 1}\nduration: 1s\n",
        )
    )
    assert plan.protocol == "h2" and plan.max_connections == 1 and plan.max_streams_per_connection == 8
    plan = load_plan_file(_write(folder, "url: https://127.0.0.1/\nload: {rate: 1}\nduration: 1s\n"))
    assert plan.protocol == "http/1.1" and plan.max_connections == 64
    with pytest.raises(PlanError, match="http2 applies to http:// and https:// targets"):
        load_plan_file(_write(folder, f"url: {URL}\nhttp2: true\nload: {{rate: 1}}\nduration: 1s\n"))


def test_command_line_options_for_grpc_and_http2(folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    plan = plan_from_options(
        URL, None, rate=10, body='{"id": 1}', proto=["protos/loadtest.proto"], connections=4, tls_verify=False
    )
    assert plan.protocol == "grpc" and plan.max_connections == 4 and not plan.tls_verify
    assert grpc_calls(plan)[0].request == b"\x08\x01"
    with pytest.raises(UsageError, match=r"^--body/--data: the request message does not fit"):
        plan_from_options(URL, None, rate=10, body='{"idd": 1}', proto=["protos/loadtest.proto"])
    with pytest.raises(UsageError, match=r"^--proto: protos/nothing\.proto: no such proto file"):
        plan_from_options(URL, None, rate=10, proto=["protos/nothing.proto"])
    with pytest.raises(UsageError, match=r"^--import-path applies to proto files"):
        plan_from_options(URL, None, rate=10, import_paths=["protos"])
    with pytest.raises(UsageError, match=r"^--ca-file: .* holds no PEM certificate"):
        plan_from_options(URL, None, rate=10, ca_file="protos/loadtest.proto")
    # Without --proto: the methods are fetched by reflection before the run.
    assert plan_from_options(URL, None, rate=10).grpc.uses_reflection
    h2 = plan_from_options("http://127.0.0.1/", None, concurrency=4, http2=True, streams=16)
    assert h2.protocol == "h2" and h2.max_streams_per_connection == 16 and h2.max_connections == 1
