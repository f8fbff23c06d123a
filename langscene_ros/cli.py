"""The ``langscene`` command: one sub-command per module in :mod:`langscene_ros.commands`.

Exit codes: 0 success, 1 the operation failed (e.g. a service answered success=false), 2 bad input
(usage errors, a bad file): always one line on stderr saying what is wrong.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from langscene_ros import commands
from langscene_ros.commands import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="langscene", description="langscene: language-embedded 3D scenes for ROS 2 (LangScene-X)."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Arguments after ``--ros-args`` (as launch_ros appends them) are kept in ``args.ros_args``."""
    # numpy's BLAS work here is on small matrices (inner size 3), where OpenBLAS's own threads gain
    # nothing and spin: a query took 159 ms of CPU for 84 ms of wall time with them, 93 for 90
    # without. Set before the sub-commands import numpy; an explicit setting in the environment wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args: list[str] = []
    if "--ros-args" in argv:
        split = argv.index("--ros-args")
        argv, ros_args = argv[:split], argv[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.ros_args = ros_args
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(f"langscene {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
