"""``langscene export SCENE.ply --query PROMPT --out F.mcap``: answers as Foxglove MCAP (no ROS)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from langscene_ros.commands import UsageError


def export_answers(
    scene: Path, prompts: list[str], params_file: Path | None, mcap: Path, png: Path | None = None
) -> dict:
    """Load ``scene`` (a PLY) with the models and settings of ``params_file`` (None: the defaults),
    answer ``prompts``, write them as Foxglove MCAP at ``mcap`` and, when given, a top view PNG at
    ``png``; returns the summary. UsageError for a bad file, scene or prompt."""
    from langscene_core.config import DEFAULT_CONFIG_PATH, ConfigError, load_config

    scene = Path(scene).resolve()
    if not scene.is_file():
        raise UsageError(f"no scene file {scene}")
    for out in (mcap, png):
        if out is not None and Path(out).exists():
            raise UsageError(f"{out} exists already; not overwriting it")
        if out is not None and not Path(out).resolve().parent.is_dir():
            raise UsageError(f"{out}: its directory does not exist")
    try:
        config = load_config(params_file or DEFAULT_CONFIG_PATH)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    config = dataclasses.replace(config, node=dataclasses.replace(config.node, scene_dir=str(scene.parent)))

    from langscene_core.engine import LangScene
    from langscene_core.errors import LangsceneError
    from langscene_core.query.grasp.gripper import Gripper
    from langscene_ros.foxglove_export import write_answers_mcap
    from langscene_ros.top_view import top_view

    engine = LangScene(config)
    engine.load_models()
    try:
        snapshot = engine.load(scene.name)
        answers = [(prompt, engine.query(prompt)) for prompt in prompts]
    except (LangsceneError, ValueError) as exc:
        raise UsageError(str(exc).replace("\n", " ")) from exc
    means, colors = snapshot.scene.means, snapshot.scene.colors
    gripper = Gripper.from_config(config.grasp)
    counts = write_answers_mcap(mcap, means, colors, answers, config.node.scene_frame, gripper)
    if png is not None:
        top_view(means, colors, answers, gripper).save(png)
    return {
        "mcap": str(Path(mcap).resolve()),
        "png": None if png is None else str(Path(png).resolve()),
        "messages": counts,
        "answers": [
            {"prompt": p, "found": r.object_box is not None, "grasps": len(r.grasps), "points": len(r.cloud)}
            for p, r in answers
        ],
    }


def run(args: argparse.Namespace) -> int:
    print(json.dumps(export_answers(args.scene, args.query, args.params_file, args.out, args.png)))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write query answers on a saved scene as Foxglove MCAP",
        description="Load a scene saved by the node or `langscene ingest`, answer each --query, and write "
        "a Foxglove MCAP: /scene_cloud, /relevancy_cloud, /answers (box, grasp arrows, label), /grasps; with "
        "--png also a top view of the scene with each answer's box, grasps and pre-grasps.",
    )
    parser.add_argument("scene", help="scene PLY")
    parser.add_argument("--query", action="append", required=True, help="prompt to answer (repeatable)")
    parser.add_argument("--out", required=True, help="MCAP file to write")
    parser.add_argument("--png", type=Path, help="also draw the answers on a top view of the scene (PNG)")
    parser.add_argument("--params-file", type=Path, help="node parameter file (models, query and grasp settings)")
    parser.set_defaults(run=run)
