"""``langscene world``: render a synthetic tabletop dataset from a spec file or a random seed."""

from __future__ import annotations

import argparse
import json
import sys

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
    dataset = render_dataset(world)
    out = write_dataset(dataset, args.out, with_contact_sheet=args.contact_sheet)
    print(
        json.dumps(
            {
                "out": str(out),
                "objects": [o.name for o in spec.objects],
                "capture": len(dataset.capture),
                "eval": len(dataset.eval),
            }
        ),
        file=sys.stdout,
    )
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
    parser.set_defaults(run=run)
