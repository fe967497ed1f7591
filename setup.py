"""The one compiled module: what the engine runs once per response (everything else is in pyproject.toml).

Cython (a build requirement) turns the .pyx into C; a C compiler and the Python headers build it
(scripts/install-deps installs both on Debian and Ubuntu)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("meshload.worker.hot_path", ["src/meshload/worker/hot_path.pyx"])])
