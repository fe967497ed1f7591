"""The worker: request engines that send a share of a plan at its planned instants, the recorder
they measure into, and the worker's side of the Redis pipeline (`process.WorkerProcess`).

Importing this package stays light: engine processes import only what they run.
"""

__all__: list[str] = []
