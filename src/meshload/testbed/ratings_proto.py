"""The `ratings.v1` gRPC protocol of the testbed's ratings replicas.

The .proto file ships in the package (`protos/ratings.proto`) and is compiled when first used, with
grpcio's dynamic proto loading (`grpc.protos_and_services`, which needs grpcio-tools), so no generated
code is kept in the repository. Clients can load it the same way, read `RATINGS_PROTO`, or ask a replica
through server reflection.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

RATINGS_PROTO = Path(__file__).parent / "protos" / "ratings.proto"
RATINGS_SERVICE = "ratings.v1.Ratings"
# as grpcio-tools finds it: relative to a sys.path entry (the folder holding the `meshload` package)
_PROTO_IMPORT = "meshload/testbed/protos/ratings.proto"


@functools.cache
def ratings_protocol() -> tuple[ModuleType, ModuleType]:
    """(messages, services): the `_pb2` and `_pb2_grpc` modules of ratings.proto."""
    import grpc

    return grpc.protos_and_services(_PROTO_IMPORT)
