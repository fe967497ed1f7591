"""The local testbed: BookInfo's services as local processes behind real HAProxy sidecars and an
ingress gateway, with one traffic-control function in force at a time.

    client -> ingress-gateway -> productpage sidecar (inbound) -> productpage
              productpage -> its sidecar (outbound) -> details sidecar -> details
                                                    -> reviews-v1|v2|v3 sidecar -> reviews -> ... -> ratings

Everything listens on 127.0.0.1, on ports chosen at `up` and kept in the state folder. Under `none`
there is no proxy at all and productpage is the entry. It imports nothing else of meshload, so it
runs on its own: `Testbed(state_dir).up("mtls")`.

    apps/             BookInfo: productpage, details, reviews v1/v2/v3, ratings (uvloop + httptools)
    httpserver.py     the small HTTP/1.1 server they run on; httpclient.py their keep-alive client
    profiles.py       the functions and their parameters; haproxy_config.py what each one configures
    proxies.py        HAProxy processes and seamless reloads; processes.py starting and stopping
    certs.py          the testbed CA and workload certificates (mtls)
    testbed.py        up / apply / down / status
"""

from .errors import TestbedFailure
from .profiles import PROFILES, Profile, parse_settings, profile_named
from .proxies import haproxy_version
from .testbed import Testbed

__all__ = [
    "PROFILES",
    "Profile",
    "Testbed",
    "TestbedFailure",
    "haproxy_version",
    "parse_settings",
    "profile_named",
]
