"""The one way a command declares an option: `Annotated[T, option("--name", env="NAME", help=...)]`.

Every option reads an environment variable `MESHLOAD_<env>`, and `--help` shows it. Choices are
`Literal` types, which typer checks and lists in `--help`; defaults are the parameters' own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from typer.models import OptionInfo

from ..errors import UsageError

if TYPE_CHECKING:
    from ..coordinator.mesh.prometheus import PrometheusSource

ENV_PREFIX = "MESHLOAD_"
#: --prometheus-step's default: a common cAdvisor scrape interval (Istio's example config: 15s).
DEFAULT_PROMETHEUS_STEP_S = 15.0


def env_var(env: str) -> str:
    """The full name of an option's environment variable."""
    return ENV_PREFIX + env


def option(*names: str, env: str, help: str, show_default: bool = True, hidden: bool = False) -> OptionInfo:
    """A command-line option (`names`, e.g. "--rate", "-r") whose environment variable is
    MESHLOAD_<env>, shown in --help (`hidden`: an option for meshload's own use, left out of it)."""
    info: OptionInfo = typer.Option(
        *names, envvar=env_var(env), show_envvar=True, help=help, show_default=show_default, hidden=hidden
    )
    return info


def prometheus_source(url: str | None, step: float) -> PrometheusSource | None:
    """--prometheus / --prometheus-step as a source, checked now (one line before any load)."""
    if url is None:
        return None
    from ..coordinator.mesh.prometheus import PrometheusAPI, PrometheusSource

    if not step > 0:
        raise UsageError(f"--prometheus-step: {step:g}s is not a scrape interval; use the cAdvisor scrape interval")
    PrometheusAPI(url).check()
    return PrometheusSource(url, step_s=step)


PrometheusOption = Annotated[
    str | None,
    option(
        "--prometheus",
        env="PROMETHEUS",
        help="Read the mesh's CPU and memory (sidecars, ingress gateway, control plane) over the measured window "
        "from this Prometheus server (cAdvisor metrics; the local testbed exports them too), e.g. http://prometheus:9090.",
    ),
]
PrometheusStepOption = Annotated[
    float,
    option(
        "--prometheus-step",
        env="PROMETHEUS_STEP",
        help="Seconds between two cAdvisor scrapes of that Prometheus (the query step).",
    ),
]
