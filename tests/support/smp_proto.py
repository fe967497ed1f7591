"""SMP v0.6.1 as its protobuf readers see it: the spec's `.proto` files (tests/results/smp_proto/),
compiled with grpcio-tools' protoc, and a strict parse of every part of an `smp.json`.

    messages = parse_smp_document(json.loads(path.read_text()))   # raises json_format.ParseError

The parse is the protobuf JSON mapping with no leniency (unknown fields rejected), as a protobuf-based
SMP reader does it; the extension block `meshload` lives outside the SMP messages and is not parsed.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message, message_factory

PROTO_DIR = Path(__file__).resolve().parents[1] / "results" / "smp_proto"
PROTO_FILES = ("metadata.proto", "service_mesh.proto", "service_mesh_performance.proto")
#: Each part of smp.json and the SMP message it is.
PART_MESSAGES = {
    "config": "smp.PerformanceTestConfig",
    "result": "smp.PerformanceTestResult",
    "mesh_config": "smp.ServiceMeshConfig",
    "env": "smp.EnvironmentConfig",
}


@functools.cache
def smp_message_classes() -> dict[str, type[message.Message]]:
    """The message class of each part, from the `.proto` files compiled now (once per test session)."""
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="meshload-smp-proto-") as folder:
        descriptor_set = Path(folder) / "smp.pb"
        # protoc in its own process: grpc_tools' in-process `main` prints to our stdout and exits on errors.
        compiled = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"--proto_path={PROTO_DIR}",
                f"--proto_path={well_known}",
                "--include_imports",
                f"--descriptor_set_out={descriptor_set}",
                *PROTO_FILES,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if compiled.returncode != 0:
            raise RuntimeError(f"protoc failed on the SMP protos: {compiled.stderr.strip()}")
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:
        pool.Add(file_proto)
    return {
        part: message_factory.GetMessageClass(pool.FindMessageTypeByName(name)) for part, name in PART_MESSAGES.items()
    }


def parse_smp_document(document: dict[str, object]) -> dict[str, message.Message]:
    """Every SMP part of `document` parsed strictly (a `json_format.ParseError` names what is wrong)."""
    classes = smp_message_classes()
    parsed = {}
    for part, message_class in classes.items():
        # Through JSON text, as a reader gets it from the file.
        parsed[part] = json_format.Parse(json.dumps(document[part]), message_class())
    return parsed
