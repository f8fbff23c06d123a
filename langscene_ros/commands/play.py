"""``langscene play DIR``: publish a world dataset on the node's camera topics, like a bag player."""

from __future__ import annotations

import argparse
import itertools
import sys

from langscene_ros.commands import UsageError


def run(args: argparse.Namespace) -> int:
    from langscene_core.sim import load_dataset  # open3d: slow to import

    if args.rate <= 0:
        raise UsageError(f"--rate must be positive, got {args.rate}")
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


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "play",
        help="publish a world dataset on the camera topics",
        description="Publish a dataset written by `langscene world` on image, camera_info, depth and camera_pose "
        "(relative names; remap with a trailing --ros-args -r image:=/cam/image), one frame per 1/RATE seconds, like a bag player.",
    )
    parser.add_argument("directory", help="dataset directory written by `langscene world`")
    parser.add_argument("--rate", type=float, default=2.0, help="frames per second (default 2)")
    parser.add_argument("--loop", action="store_true", help="start over at the end until interrupted")
    parser.add_argument("--with-eval", action="store_true", help="also play the eval views after the capture")
    parser.add_argument("--scene-frame", default="map", help="frame_id of camera_pose (default map)")
    parser.add_argument(
        "--wait",
        type=float,
        default=5.0,
        help="seconds to wait for subscribers on all four topics before publishing (default 5)",
    )
    parser.set_defaults(run=run)
