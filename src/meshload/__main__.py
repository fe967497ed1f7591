"""`python -m meshload` is the `meshload` command."""

from .cli import main

main()
