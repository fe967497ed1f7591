"""`python -m meshload.locust --path NAME`: print where the built-in locustfile NAME is, for `locust -f`.

locust -f $(python -m meshload.locust --path bookinfo) --host http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from .builtin_files import builtin_locustfiles, locustfile_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshload.locust", description=__doc__.splitlines()[0])
    parser.add_argument("--path", metavar="NAME", help="print the path of the built-in locustfile NAME")
    parser.add_argument("--list", action="store_true", help="list the built-in locustfiles")
    args = parser.parse_args(argv)
    if args.list or not args.path:
        print("\n".join(builtin_locustfiles()))
        return 0
    try:
        print(locustfile_path(args.path))
    except UsageError as exc:
        print(f"meshload: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


sys.exit(main())
