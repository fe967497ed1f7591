"""`python -m meshload.worker.asyncio_main`: the process a worker starts to run a high-rate asyncio
engine apart from its own threads (the record publisher, the heartbeats); it serves its parent
(`engine_process.serve_child`): prepare one share, run it, report."""

from meshload.worker.engine_process import serve_child

raise SystemExit(serve_child())
