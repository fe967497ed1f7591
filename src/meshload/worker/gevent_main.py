"""`python -m meshload.worker.gevent_main`: the process a worker starts to run an engine on gevent (the
Locust engine). It patches the standard library for gevent before anything imports socket, ssl or
threading, then serves its parent (`engine_process.serve_child`): prepare one share, run it, report."""

from gevent import monkey

monkey.patch_all()

from meshload.worker.engine_process import serve_child  # noqa: E402  (after the patching, on purpose)

raise SystemExit(serve_child())
