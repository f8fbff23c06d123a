"""The ``langscene`` command: one sub-command per module in :mod:`langscene_ros.commands`.

Exit codes: 0 success, 1 the operation failed (e.g. a service answered success=false), 2 bad input
(usage errors, a bad file): always one line on stderr saying what is wrong.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from langscene_ros import commands
from langscene_ros.commands import UsageError

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="langscene", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(f"langscene {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
