"""A block of a README made by a script, kept between two marker comments: print it, or write it in."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def with_block(readme: str, start: str, end: str, block: str) -> str:
    """`readme` with what lies between the markers `start` and `end` replaced by `block`."""
    before, rest = readme.split(start, 1)
    _, after = rest.split(end, 1)
    return f"{before}{start}\n{block}{end}{after}"


def block_between(readme: str, start: str, end: str) -> str:
    """What lies between the markers, stripped."""
    return readme.split(start, 1)[1].split(end, 1)[0].strip()


def main(argv: list[str], *, make: Callable[[], str], readme: Path, start: str, end: str, usage: str) -> int:
    """No argument: print the block; `--write`: put it into `readme` between the markers."""
    if argv == ["--write"]:
        readme.write_text(with_block(readme.read_text(), start, end, make()))
        return 0
    if argv:
        print(usage, file=sys.stderr)
        return 2
    sys.stdout.write(make())
    return 0
