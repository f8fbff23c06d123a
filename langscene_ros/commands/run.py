"""``langscene run``: start the node exactly as launch/scene.launch.py does."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from langscene_core.config import DEFAULT_CONFIG_PATH
from langscene_ros.commands import UsageError


def ros_arguments(params_file: Path | None, namespace: str, remaps: list[str]) -> list[str]:
    """The ``--ros-args`` list the launch file would give the node."""
    args = ["--params-file", str(params_file)] if params_file is not None else []
    if namespace:
        args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    for remap in remaps:
        if ":=" not in remap:
            raise UsageError(f"remap '{remap}' is not of the form from:=to")
        args += ["-r", remap]
    return args


def run(args: argparse.Namespace) -> int:
    params_file = args.params_file
    if params_file is None and "--params-file" not in args.ros_args:  # launch passes its file there
        params_file = DEFAULT_CONFIG_PATH
    if params_file is not None and not params_file.is_file():
        raise UsageError(f"parameter file not found: {params_file}")
    # The start-up runs without the cyclic garbage collector: importing torch, open_clip and open3d
    # allocates millions of objects that all live as long as the process, and the collections that
    # walked them took about 1.1 of 7.1 s of `import langscene_ros.node` here (2 cores, 2026-12-06).
    # spin_node freezes what the start-up made and turns the collector back on once the models are loaded.
    gc.disable()
    from langscene_ros.node import spin_node  # rclpy only when the node really runs

    return spin_node(ros_arguments(params_file, args.namespace, args.remap) + args.ros_args)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="start the langscene node",
        description="Start the langscene node (same as `ros2 launch langscene scene.launch.py`).",
    )
    parser.add_argument(
        "--params-file",
        type=Path,
        default=None,
        help=f"ROS 2 parameter file (default {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument("--namespace", default="", help="namespace for the node and its topics")
    parser.add_argument(
        "--remap",
        action="append",
        default=[],
        metavar="FROM:=TO",
        help="topic remap, e.g. image:=/camera/color/image_raw (repeatable)",
    )
    parser.set_defaults(run=run)
