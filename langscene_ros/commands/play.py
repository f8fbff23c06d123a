"""``langscene play DIR``: publish a world dataset on the node's camera topics, like a bag player."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from langscene_ros.commands import UsageError


def is_bag(path: Path) -> bool:
    """A rosbag2 directory (with metadata.yaml) or an .mcap / .db3 file."""
    return path.suffix in (".mcap", ".db3") or (path / "metadata.yaml").is_file()


def run(args: argparse.Namespace) -> int:
    bag = is_bag(Path(args.directory))
    if args.rate is None:
        args.rate = 1.0 if bag else 2.0
    if args.rate <= 0:
        raise UsageError(f"--rate must be positive, got {args.rate}")
    if bag:
        return play_bag(args)
    if args.clock:
        raise UsageError("--clock goes with a bag; a world dataset is stamped with the player's clock")
    from langscene_core.sim import load_dataset  # open3d: slow to import

    try:
        dataset = load_dataset(args.directory)
    except ValueError as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    frames = dataset.capture + (dataset.eval if args.with_eval else [])
    import rclpy  # ROS only when the command really runs

    from langscene_ros.player import Player

    rclpy.init(args=["--ros-args", *args.ros_args] if args.ros_args else None)
    node = rclpy.create_node("langscene_player")
    try:
        player = Player(node, scene_frame=args.scene_frame)
        if not player.wait_for_subscribers(args.wait):
            print(
                f"langscene play: some topics have no subscriber after {args.wait:.0f} s; publishing anyway",
                file=sys.stderr,
            )
        sequence = itertools.cycle(frames) if args.loop else iter(frames)
        count = player.play(sequence, args.rate)
        print(f"published {count} frames from {args.directory}")
        return 0
    finally:
        node.destroy_node()
        rclpy.shutdown()


def play_bag(args: argparse.Namespace) -> int:
    """Play a bag into the running node (original stamps, log-time spacing divided by --rate)."""
    if args.loop or args.with_eval:
        raise UsageError("--loop and --with-eval go with a world dataset, not a bag")
    import rclpy

    from langscene_ros.bag import BagError, BagReader
    from langscene_ros.player import BagPlayer

    try:
        bag = BagReader(args.directory)
    except BagError as exc:
        raise UsageError(str(exc)) from exc
    rclpy.init(args=["--ros-args", *args.ros_args] if args.ros_args else None)
    node = rclpy.create_node("langscene_player")
    try:
        player = BagPlayer(node, bag, clock=args.clock)
        for topic, kind in player.skipped.items():
            print(f"langscene play: skipping {topic}: type {kind} is not installed here", file=sys.stderr)
        if not player.wait_for_subscribers(args.wait):
            print(
                f"langscene play: some topics have no subscriber after {args.wait:.0f} s; publishing anyway",
                file=sys.stderr,
            )
        try:
            counts = player.play(args.rate)
        except BagError as exc:
            raise UsageError(str(exc)) from exc
        print(f"published {sum(counts.values())} messages from {args.directory}: {counts}")
        return 0
    finally:
        bag.close()
        node.destroy_node()
        rclpy.shutdown()


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "play",
        help="publish a world dataset or a bag on the camera topics",
        description="Publish a dataset written by `langscene world` on image, camera_info, depth and camera_pose "
        "(relative names; remap with a trailing --ros-args -r image:=/cam/image) and the camera's pose on /tf "
        "(SCENE_FRAME -> camera_link) + /tf_static (camera_link -> camera_optical), one frame per 1/RATE seconds, "
        "like a bag player; or play a rosbag2 directory / .mcap file: every topic whose type is installed, "
        "/tf and /tf_static included, with the recorded stamps, spaced as recorded divided by RATE.",
    )
    parser.add_argument("directory", help="dataset directory written by `langscene world`, or a bag")
    parser.add_argument(
        "--rate",
        type=float,
        help="dataset: frames per second (default 2); bag: speed factor over the recorded timing (default 1)",
    )
    parser.add_argument("--clock", action="store_true", help="bag: also publish /clock at the recorded times")
    parser.add_argument("--loop", action="store_true", help="start over at the end until interrupted")
    parser.add_argument("--with-eval", action="store_true", help="also play the eval views after the capture")
    parser.add_argument(
        "--scene-frame", default="map", help="parent frame of /tf and frame_id of camera_pose (default map)"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=5.0,
        help="seconds to wait for subscribers on image, camera_info, depth and /tf before publishing (default 5)",
    )
    parser.set_defaults(run=run)
