"""``langscene world``: render a synthetic tabletop dataset from a spec file or a random seed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from langscene_ros.commands import UsageError


def run(args: argparse.Namespace) -> int:
    from langscene_core.sim import build_world, load_spec, random_spec, render_dataset, write_dataset  # open3d

    if (args.spec is None) == (args.seed is None):
        raise UsageError("give exactly one of --spec FILE or --seed N")
    if args.spec is not None and args.objects is not None:
        raise UsageError("--objects goes with --seed, not --spec")
    try:
        spec = (
            load_spec(args.spec)
            if args.spec is not None
            else random_spec(args.seed, count=4 if args.objects is None else args.objects)
        )
        world = build_world(spec)
    except ValueError as exc:  # SpecError and placement problems name the bad key
        raise UsageError(str(exc).replace("\n", " ")) from exc
    if args.bag_rate <= 0:
        raise UsageError(f"--bag-rate must be positive, got {args.bag_rate}")
    if args.bag is not None and Path(args.bag).exists():
        raise UsageError(f"--bag {args.bag} exists already; not overwriting it")
    dataset = render_dataset(world)
    out = write_dataset(dataset, args.out, with_contact_sheet=args.contact_sheet)
    summary = {
        "out": str(out),
        "objects": [o.name for o in spec.objects],
        "capture": len(dataset.capture),
        "eval": len(dataset.eval),
    }
    if args.bag is not None:
        from langscene_ros.bag import BagError, write_bag
        from langscene_ros.player import world_bag_records

        records = world_bag_records(dataset.capture, args.bag_rate, args.scene_frame, args.bag_image, args.bag_depth)
        try:
            summary["bag"] = {"path": str(Path(args.bag).resolve()), "topics": write_bag(args.bag, records)}
        except BagError as exc:
            raise UsageError(str(exc)) from exc
    print(json.dumps(summary), file=sys.stdout)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "world",
        help="render a synthetic tabletop dataset",
        description="Render a synthetic tabletop world (DESIGN.md section 5) into a dataset directory: images, "
        "depth, normals, instance ids, cameras.json, spec.json and LERF-OVS labels of the eval views.",
    )
    parser.add_argument("--spec", help="scene spec JSON file")
    parser.add_argument("--seed", type=int, help="generate a random scene with this seed instead")
    parser.add_argument("--objects", type=int, help="number of objects of a random scene (default 4)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--contact-sheet",
        action="store_true",
        help="also write contact_sheet.png (RGB | depth | normals | ids of a few views)",
    )
    parser.add_argument(
        "--bag",
        help="also write the capture as a bag: OUT.mcap (one MCAP file) or a rosbag2 directory (MCAP storage) "
        "with /tf_static, /tf, /camera_info, /camera_pose, depth and image, stamped from 2026-01-01T00:00:00Z",
    )
    parser.add_argument(
        "--bag-rate", type=float, default=10.0, help="frames per second of the bag's stamps (default 10)"
    )
    parser.add_argument(
        "--bag-image",
        choices=("raw", "jpeg", "png"),
        default="raw",
        help="colour in the bag: raw (Image rgb8 on /image) or CompressedImage on /image/compressed",
    )
    parser.add_argument(
        "--bag-depth",
        choices=("raw", "compressedDepth"),
        default="raw",
        help="depth in the bag: raw (32FC1 m on /depth) or 16UC1 mm PNG on /depth/compressedDepth",
    )
    parser.add_argument("--scene-frame", default="map", help="the bag's scene frame (camera_pose, /tf parent)")
    parser.set_defaults(run=run)
