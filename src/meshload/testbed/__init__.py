"""The local testbed: BookInfo's services as local processes behind real HAProxy proxies and an
ingress gateway, with one traffic-control function and one topology in force at a time.

    client -> ingress-gateway -> productpage's proxy (inbound) -> productpage
              productpage -> its proxy (outbound) -> details' proxy -> details
                                                  -> reviews-v1|v2|v3's proxy -> reviews -> ... -> ratings
    gRPC client -> ingress-gateway (gRPC port) -> ratings-grpc-1|2|3's proxy -> replica (ratings.v1.Ratings)

Topologies (`TOPOLOGIES`): `sidecar`, a proxy per instance; `per-node`, one shared proxy per node
(two nodes) fronting the instances placed on it; `ingress-only`, only the gateway, services calling
each other directly. Everything listens on 127.0.0.1, on ports chosen at `up` and kept in the state
folder. Under `none` there is no proxy at all and productpage is the entry. It imports nothing else
of meshload, so it runs on its own: `Testbed(state_dir).up("mtls", topology="per-node")`.

    apps/             BookInfo: productpage, details, reviews v1/v2/v3, ratings (uvloop + httptools),
                      and ratings over gRPC (grpcio, three replicas); the product page's template
    httpserver.py     the small HTTP/1.1 server they run on; httpclient.py their keep-alive client
    topology.py       instances, nodes, where each topology puts the proxies, ports
    profiles.py       the functions, their parameters and topologies; haproxy_config.py what each configures
    proxies.py        HAProxy processes and seamless reloads; processes.py starting and stopping
    certs.py          the testbed CA and workload certificates (mtls)
    ratings_proto.py  the ratings.v1 gRPC protocol, loaded from the shipped protos/ratings.proto
    testbed.py        up / apply / set_topology / down / status / grpc_calls
    startup.py        the applications' ports and command lines, waiting until BookInfo answers
    inspection.py     status: health, entry points, each process's ports, calls per replica
"""

from .errors import TestbedFailure
from .profiles import PROFILES, Profile, parse_settings, profile_named
from .proxies import haproxy_version
from .ratings_proto import RATINGS_PROTO, RATINGS_SERVICE, ratings_protocol
from .testbed import Testbed
from .topology import TOPOLOGIES

__all__ = [
    "PROFILES",
    "Profile",
    "RATINGS_PROTO",
    "RATINGS_SERVICE",
    "TOPOLOGIES",
    "Testbed",
    "TestbedFailure",
    "haproxy_version",
    "parse_settings",
    "profile_named",
    "ratings_protocol",
]
