"""``langscene ingest BAG --out SCENE.ply``: reconstruct a scene offline from a bag, with no DDS.

The node's inputs are read from the bag under the names the node would subscribe to (the same
``--ros-args`` remaps, namespace and parameters, :mod:`langscene_ros.ros_args`), deserialized into the
node's message types, converted by the node's own input code (:mod:`langscene_ros.inputs`) in the
bag's log-time order, given to the same engine, reconstructed and saved.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from langscene_ros.commands import UsageError


@dataclass(frozen=True)
class BagInput:
    """A topic ingest reads: its rclpy message class, the :class:`~langscene_ros.inputs.Inputs` method
    taking it ('transforms' for /tf and /tf_static), whether it is /tf_static and whether the node needs it."""

    type: type
    handler: str
    static: bool = False
    required: bool = False


def topic_plan(config, ros) -> dict[str, BagInput]:
    """The fully resolved topics the node would subscribe to with ``config`` (LangsceneConfig) and
    ``ros`` (RosArgs): its camera inputs (transports, pose source), /tf and /tf_static (remappable as
    any name; /tf required with ``node.pose_source: tf``)."""
    from tf2_msgs.msg import TFMessage

    from langscene_ros.inputs import camera_inputs

    plan = {
        ros.resolve(i.label) + i.suffix: BagInput(i.type, i.handler, required=i.required)
        for i in camera_inputs(config.node)
    }
    plan[ros.resolve("/tf")] = BagInput(TFMessage, "transforms", required=config.node.pose_source == "tf")
    plan[ros.resolve("/tf_static")] = BagInput(TFMessage, "transforms", static=True)
    return plan


def feed(bag, plan: dict[str, BagInput], inputs) -> dict[str, int]:
    """Give every message of ``plan``'s topics in ``bag`` (a BagReader) to ``inputs`` (Inputs) in log-time
    order, as the node's subscriptions would; returns the messages read per topic. BagError on a missing
    required topic, a topic of another type, or a corrupt part."""
    bag.check({topic: entry.type for topic, entry in plan.items()}, [t for t, e in plan.items() if e.required])
    counts = dict.fromkeys(plan, 0)
    for topic, _, message in bag.messages({topic: entry.type for topic, entry in plan.items()}):
        counts[topic] += 1
        entry = plan[topic]
        if entry.handler == "transforms":
            inputs.transforms(message, static=entry.static)
        else:
            getattr(inputs, entry.handler)(message)
    return {topic: n for topic, n in counts.items() if n}


def run(args: argparse.Namespace) -> int:
    from langscene_core.config import ConfigError
    from langscene_ros.ros_args import config_from_ros_args, parse_ros_args

    try:
        extra = ["--params-file", str(args.params_file)] if args.params_file else []
        ros = parse_ros_args(extra + list(args.ros_args))
        config = config_from_ros_args(ros)
    except (ValueError, ConfigError) as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    out = Path(args.out)
    if out.suffix != ".ply":
        raise UsageError(f"--out must name a .ply file, got {out}")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist")

    from langscene_core.engine import LangScene
    from langscene_core.reconstruction.scene import save_scene
    from langscene_ros.bag import BagError, BagReader
    from langscene_ros.inputs import Inputs

    start = time.perf_counter()
    plan = topic_plan(config, ros)
    try:
        with BagReader(args.bag) as bag:
            bag.check({topic: entry.type for topic, entry in plan.items()}, [t for t, e in plan.items() if e.required])
            engine = LangScene(config)  # no clock: recorded stamps are not compared with the time now
            engine.load_models()
            inputs = Inputs(
                engine,
                config.node,
                reject=lambda reason, detail, count: None,  # counted by the engine, reported below
                internal_error=lambda what: traceback.format_exc(limit=1).strip().splitlines()[-1],
            )
            counts = feed(bag, plan, inputs)
    except BagError as exc:
        raise UsageError(str(exc)) from exc
    status = engine.status()
    if status.keyframes < 2:
        print(
            f"langscene ingest: {status.keyframes} keyframes from {args.bag} (need 2); images: {status.images}; "
            f"rejected: {dict(status.rejected)}; dropped: {dict(status.dropped)}",
            file=sys.stderr,
        )
        return 1
    read_s = time.perf_counter() - start
    try:
        snapshot = engine.reconstruct()
        path = save_scene(snapshot.scene, out)
    except Exception as exc:  # noqa: BLE001 - e.g. garbage a bag's payload carried past the checks
        print(f"langscene ingest: reconstruction from {args.bag} failed: {exc!r}".replace("\n", " "), file=sys.stderr)
        return 1
    summary = {
        "out": str(path.resolve()),
        "messages": counts,
        "keyframes": status.keyframes,
        "images": status.images,
        "rejected": dict(status.rejected),
        "dropped": dict(status.dropped),
        "rejected_transforms": inputs.rejected_transforms,
        "gaussians": snapshot.num_gaussians,
        "read_s": round(read_s, 2),
        "total_s": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(summary))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="reconstruct a scene offline from a bag (no DDS)",
        description="Read the node's camera inputs from a rosbag2 directory or .mcap file under the names the "
        "node would use (a trailing --ros-args with -r remaps, -p parameters and --params-file apply as "
        "they do to `langscene run`), reconstruct with the node's engine and save the scene as a PLY.",
    )
    parser.add_argument("bag", help="rosbag2 directory (sqlite3 or MCAP) or .mcap file")
    parser.add_argument("--out", required=True, help="scene file to write (.ply, as ~/save_scene writes it)")
    parser.add_argument("--params-file", type=Path, help="node parameter file (as `langscene run --params-file`)")
    parser.set_defaults(run=run)
