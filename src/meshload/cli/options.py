"""The one way a command declares an option: `Annotated[T, option("--name", env="NAME", help=...)]`.

Every option reads an environment variable `MESHLOAD_<env>`, and `--help` shows it. Choices are
`Literal` types, which typer checks and lists in `--help`; defaults are the parameters' own.
"""

from __future__ import annotations

import typer
from typer.models import OptionInfo

ENV_PREFIX = "MESHLOAD_"


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
