"""meshload: distributed, coordinated-omission-correct load generation for measuring what each
service-mesh traffic-control function costs. The command is `meshload` (`meshload.cli`)."""

#: The one statement of meshload's version (pyproject.toml reads it from here).
__version__ = "0.1.0"
