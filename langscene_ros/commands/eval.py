"""``langscene eval``: reconstruct a world dataset's capture in one mode and score it (DESIGN.md 6, 8).

JSON written to ``--json``: ``{"mode", "loc_acc", "miou", "center_error_m", "grasp_valid_rate",
"per_query", ...}`` (layout of the rest: langscene_core.eval.evaluate), plus ``keyframes``, ``notes`` (the
scene's reconstruction notes, e.g. a TriMap fallback to keyframes only) and ``reconstruct_s``. With
``--save-maps DIR``: the relevancy maps the 2D metric used, ``DIR/<eval image stem>/<query, spaces as
_>.npy`` float32 [L, H, W] (one per mask level, at the label's resolution), so that anyone can recompute
the metric from the maps, the labels and the JSON's ``box_filter_px``.

``langscene eval --lerf-ovs ROOT --scene NAME --json F``: the same 2D metric on a real LERF-OVS scene
(langscene_core.eval.lerf_ovs), reconstructed from all its images and its COLMAP points.

``langscene eval-suite --dev N --fresh N --modes M,... --out DIR``: every mode side by side on
development and fresh seeds (langscene_core.eval.suite), ``DIR/suite.json`` and ``DIR/suite.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langscene_core.config import ConfigError, LangsceneConfig, load_config
from langscene_ros.commands import UsageError
from langscene_ros.commands.demo import DEMO_PARAMS


def _fmt(value, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.3f}{unit}"


def _config(args: argparse.Namespace) -> LangsceneConfig:
    """The settings of ``--params-file``; a bad file is a usage error (one line, exit 2)."""
    try:
        return load_config(args.params_file)
    except ConfigError as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc


def _evaluate_and_write(evaluation: Callable[[], dict[str, Any]], path: Path) -> dict[str, Any] | None:
    """Run ``evaluation`` and write its result as JSON to ``path``; None (and the reason on stderr)
    when the reconstruction failed."""
    from langscene_core.reconstruction.reconstruct import ReconstructionError

    try:
        result = evaluation()
    except ReconstructionError as exc:
        print(f"langscene eval: reconstruction failed: {exc}", file=sys.stderr)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def run_lerf_ovs(args: argparse.Namespace) -> int:
    """``langscene eval --lerf-ovs ROOT --scene NAME``: the 2D metrics on a real LERF-OVS scene."""
    from langscene_core.eval.evaluate import evaluate_lerf_ovs  # torch: slow to import
    from langscene_core.eval.lerf_ovs import LerfOvsError, load_lerf_ovs
    from langscene_core.reconstruction.models import load_models

    if not args.scene or args.mode:
        raise UsageError("--lerf-ovs needs --scene NAME and takes no --mode (the scene is reconstructed dense)")
    config = _config(args)
    try:
        data = load_lerf_ovs(args.lerf_ovs, args.scene)
    except LerfOvsError as exc:
        raise UsageError(str(exc)) from exc
    result = _evaluate_and_write(
        lambda: evaluate_lerf_ovs(data, load_models(config.models, config.densify), config, args.save_maps), args.json
    )
    if result is None:
        return 1
    print(
        f"[eval] lerf_ovs {args.scene}: loc_acc {_fmt(result['loc_acc'])} miou {_fmt(result['miou'])} "
        f"(box filter {result['box_filter_px']} px, {result['views']} views, {result['keyframes']} images); "
        f"wrote {args.json}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.lerf_ovs is not None:
        return run_lerf_ovs(args)
    from langscene_core.eval.evaluate import MODES, evaluate_mode, mode_config  # torch: slow to import
    from langscene_core.reconstruction.models import load_models
    from langscene_core.sim.dataset import load_dataset

    if args.scene:
        raise UsageError("--scene goes with --lerf-ovs")
    if args.mode not in MODES:
        raise UsageError(f"--mode {args.mode!r}: unknown mode; expected one of {', '.join(MODES)}")
    if not args.data.is_dir():
        raise UsageError(f"--data {args.data}: no such directory")
    config = _config(args)
    try:
        dataset = load_dataset(args.data)
    except ValueError as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    if not dataset.labels:
        raise UsageError(f"--data {args.data}: the dataset has no labelled eval views")
    config = mode_config(config, args.mode)
    result = _evaluate_and_write(
        lambda: evaluate_mode(dataset, args.mode, load_models(config.models, config.densify), config, args.save_maps),
        args.json,
    )
    if result is None:
        return 1
    print(
        f"[eval] {args.mode}: loc_acc {_fmt(result['loc_acc'])} miou {_fmt(result['miou'])} "
        f"(box filter {result['box_filter_px']} px) centre error {_fmt(result['center_error_m'], ' m')} "
        f"located within {result['located_m'] * 100:.0f} cm {_fmt(result['located_rate'])} "
        f"grasps valid {_fmt(result['grasp_valid_rate'])} "
        f"({result['views']} views, {result['found']}/{len(result['names'])} objects found in 3D); wrote {args.json}"
    )
    return 0


def run_suite(args: argparse.Namespace) -> int:
    from langscene_core.eval.evaluate import MODES  # torch: slow to import
    from langscene_core.eval.suite import run_suite as suite
    from langscene_core.eval.suite import write_suite
    from langscene_core.reconstruction.models import load_models

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise UsageError(f"--modes {args.modes!r}: expected some of {', '.join(MODES)}")
    if args.dev < 0 or args.fresh < 0 or args.dev + args.fresh == 0:
        raise UsageError(f"--dev {args.dev} --fresh {args.fresh}: give a positive number of scenes")
    config = _config(args)
    counts = {split: n for split, n in (("dev", args.dev), ("fresh", args.fresh)) if n}
    if args.dev_start < 0 or args.fresh_start < 0:
        raise UsageError(f"--dev-start {args.dev_start} --fresh-start {args.fresh_start}: expected indices >= 0")
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    result = suite(
        counts,
        modes,
        config,
        lambda c: load_models(c.models, c.densify),
        log=lambda m: print(m, flush=True),
        starts={"dev": args.dev_start, "fresh": args.fresh_start},
        cache=args.cache,
    )
    json_path, md_path = write_suite(result, args.out)
    print(md_path.read_text(), end="")
    print(f"[eval-suite] wrote {json_path} and {md_path}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a reconstruction of a world dataset (LERF-OVS protocol + 3D)",
        description="Reconstruct the capture of a `langscene world` dataset in one mode (dense: all capture "
        "frames through keyframe selection; sparse: 2 keyframes; sparse_trimap: 2 keyframes + TriMap "
        "densification; baseline_2d: no 3D, each eval view scored on its nearest of the 2 sparse "
        "keyframes' CLIP relevancy) and score it: 2D localization accuracy and mIoU on the labelled eval views, "
        "3D object centre error, located fraction and grasp validity against the true geometry (not for "
        "baseline_2d). The 2D metrics are LangSplat's eval/evaluate_iou_loc.py (LERF-OVS protocol).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="dataset directory written by `langscene world`")
    source.add_argument(
        "--lerf-ovs",
        type=Path,
        help="the real LERF-OVS folder (<root>/<scene>/images, sparse/0, <root>/label/<scene>/*.json): "
        "reconstruct --scene from all its images and score its labelled frames (2D only)",
    )
    parser.add_argument("--scene", help="with --lerf-ovs: the scene's folder name (e.g. figurines)")
    parser.add_argument("--mode", help="with --data: dense, sparse, sparse_trimap or baseline_2d")
    parser.add_argument("--json", type=Path, required=True, help="output JSON file")
    parser.add_argument(
        "--save-maps",
        type=Path,
        default=None,
        help="folder for the relevancy maps the 2D metric used: <eval image stem>/<query with _>.npy, "
        "float32 [levels, H, W]",
    )
    parser.add_argument(
        "--params-file",
        type=Path,
        default=DEMO_PARAMS,
        help="ROS parameter file with the pipeline settings (default %(default)s)",
    )
    parser.set_defaults(run=run)
    suite = subparsers.add_parser(
        "eval-suite",
        help="every evaluation mode side by side on development and fresh seeds",
        description="Render seeded tabletops (dev: seeds 7000+, tuned on; fresh: seeds 8000000+, never tuned "
        "on), evaluate each in every mode as `langscene eval` does, with three absent prompts per scene, and "
        "write a table per (split, mode): suite.json and suite.md in --out.",
    )
    suite.add_argument("--dev", type=int, default=2, help="development scenes (seeds 7000, 7001, ...)")
    suite.add_argument("--fresh", type=int, default=2, help="fresh scenes (seeds 8000000, 8000001, ...)")
    suite.add_argument(
        "--dev-start", type=int, default=0, help="index of the first development scene (seed 7000 + index)"
    )
    suite.add_argument(
        "--fresh-start",
        type=int,
        default=0,
        help="index of the first fresh scene (seed 8000000 + index): a range no earlier run looked at",
    )
    suite.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder of reconstructed scenes (<mode>_<seed>.ply): read when present, written when not, so a "
        "second run re-grades the same reconstructions",
    )
    suite.add_argument("--modes", default="dense,sparse,sparse_trimap,baseline_2d", help="comma-separated modes")
    suite.add_argument("--out", type=Path, required=True, help="output folder for suite.json and suite.md")
    suite.add_argument(
        "--params-file",
        type=Path,
        default=DEMO_PARAMS,
        help=f"ROS parameter file with the pipeline settings (default {DEMO_PARAMS})",
    )
    suite.set_defaults(run=run_suite)
