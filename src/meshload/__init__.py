"""meshload: distributed, coordinated-omission-correct load generation for measuring what each
service-mesh traffic-control function costs. The command is `meshload` (`meshload.cli`)."""

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _version

try:
    #: The installed distribution's version (pyproject.toml states it, once).
    __version__ = _version("meshload")
except _NotInstalled:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
