"""`python -m meshload` is the `meshload` command."""

from .coordinator.cli import main

main()
