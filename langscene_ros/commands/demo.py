"""``langscene demo``: the end-to-end demo over ROS (see langscene_ros.demo)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from langscene_core.config import ConfigError, config_path, load_config
from langscene_ros.commands import UsageError

DEMO_SPEC = config_path("demo_scene.json")
DEMO_PARAMS = config_path("demo.yaml")


def run(args: argparse.Namespace) -> int:
    from langscene_core.sim import SpecError, load_spec
    from langscene_ros.demo import DemoError, run_demo

    try:
        spec = load_spec(args.spec)
        load_config(args.params_file)
    except (SpecError, ConfigError, OSError) as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    started = time.time()
    try:
        result = run_demo(spec, args.params_file, args.work_dir, args.prompt, rate_hz=args.rate)
    except DemoError as exc:
        print(f"langscene demo: {exc}")
        return 1
    scene = args.work_dir / "scene.ply"  # the node saved it there (node.scene_dir = work_dir)
    if scene.is_file() and scene.stat().st_mtime >= started:  # this run's, not a previous run's
        from langscene_ros.commands.export import export_answers

        pictures = {"mcap": args.work_dir / "answers.mcap", "png": args.work_dir / "answers.png"}
        for path in pictures.values():
            path.unlink(missing_ok=True)  # the previous run's
        prompts = list(dict.fromkeys([o.name for o in spec.objects] + list(args.prompt)))
        result["pictures"] = export_answers(scene, prompts, args.params_file, pictures["mcap"], pictures["png"])
        print(f"[demo] answers drawn in {pictures['png']}, Foxglove MCAP {pictures['mcap']}")
    from langscene_core.eval.evaluate import LOCATED_M

    located = sum(q["success"] and q["located"] for q in result["queries"])
    absent = [q for q in result["queries"] if "absent_answered" in q]
    print(
        f"[demo] {located}/{len(spec.objects)} objects located within {LOCATED_M * 100:.0f} cm; "
        f"{sum(q['absent_answered'] for q in absent)}/{len(absent)} absent prompts answered with an object; "
        f"total {result['total_s']:.1f} s; "
        f"node peak RSS {result['node_peak_rss_mb'] or float('nan'):.0f} MB"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"[demo] wrote {args.json}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the end-to-end demo over ROS",
        description="Render a tabletop, play it into a node in another process, "
        "reconstruct, query every object and check the answers against the truth; then draw the answers "
        "(WORK_DIR/answers.png, a top view) and write them as Foxglove MCAP (WORK_DIR/answers.mcap).",
    )
    parser.add_argument("--spec", type=Path, default=DEMO_SPEC, help="scene spec JSON (default %(default)s)")
    parser.add_argument(
        "--params-file",
        type=Path,
        default=DEMO_PARAMS,
        help="node parameter file (default %(default)s: a CPU training budget)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("build/demo"), help="where the node log goes")
    parser.add_argument(
        "--prompt",
        action="append",
        default=["purple elephant"],
        help="extra prompt to query besides the object names (repeatable)",
    )
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second played into the node")
    parser.add_argument("--json", type=Path, help="write the result JSON here")
    parser.set_defaults(run=run)
