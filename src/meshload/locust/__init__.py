"""meshload's Locust plugin: a locustfile that imports it, run with plain `locust`, gets meshload's
exact, coordinated-omission-correct measurements beside Locust's own.

    import meshload.locust
    from locust import task
    from locust.contrib.fasthttp import FastHttpUser

    class Shopper(FastHttpUser):
        wait_time = meshload.locust.open_loop(200)  # optional: open loop, 200 tasks/s in total

        @task
        def front(self):
            self.client.get("/")

Every request event is recorded per Locust worker (and per request name) into the HDR interval
records meshload's own workers send, published through Redis streams and merged exactly on the
master (`plugin.py`); Locust's master/worker mode, `--processes` included, works as before. Options
`--meshload-out DIR`, `--meshload-redis URL`, `--meshload-warmup`, `--meshload-strict`; a meshload tab
in the web UI. `locustfile_path("bookinfo")` is the built-in BookInfo journey for the testbed.

Importing this package hooks the plugin into Locust's events, the way Locust plugins do.
"""

# Locust first: it monkey-patches the standard library for gevent, which must happen before the
# modules below import ssl, socket or redis.
import locust

from .builtin_files import locustfile_path
from .open_loop import open_loop
from .plugin import register as _register

_register(locust.events)

__all__ = ["locustfile_path", "open_loop"]
