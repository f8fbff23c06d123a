"""Benchmarks the whole pipeline on random tabletops it was never tuned on (`unseen_scenes_*`).

Each scene is a seeded `random_spec` (3-6 objects of the world's vocabulary, random table colour) with
one of three captures: a 24-view orbit at 160x120, a 12-view 120-degree arc at 320x240 (reconstructed
at `keyframe.max_image_side`), and a sparse two-view capture. The capture goes through keyframe
selection and `reconstruct` with `config/demo.yaml` (in process, no ROS), then the scene is graded by
`langscene_core.eval.evaluate.evaluate` (as `langscene eval --mode dense`: LERF-OVS 2D metrics on the eval
views; every object queried by name, its centre error against the world, every grasp through the
world's grasp checker) and two absent objects are queried too. Lines: located fraction (centre within
2 cm, with the 2D loc_acc and mIoU), median centre error, valid grasp fraction, objects with at least
one valid grasp, objects whose best (first) grasp is valid, absent objects answered with an object.

    .venv/bin/python bench/unseen_scenes.py [--scenes 3] [--cache DIR]

``--cache`` keeps each reconstructed scene (PLY) so that a second run only re-queries.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from langscene_core.config import load_config
from langscene_core.engine import LangScene, QueryableScene
from langscene_core.eval.evaluate import evaluate, mode_keyframes
from langscene_core.reconstruction.models import load_models
from langscene_core.sim import build_world, render_dataset
from langscene_core.sim.generate import random_spec
from langscene_core.sim.spec import COLORS, SHAPES, CameraSpec, TableSpec

REPO = Path(__file__).resolve().parent.parent
CAPTURES = (
    CameraSpec(),
    CameraSpec(width=320, height=240, trajectory="arc", views=12),
    CameraSpec(trajectory="two_view", views=2),
)
TABLE_COLORS = ("gray", "brown", "white", "black")
LOCATED_M = 0.02


def scene_spec(index: int):
    """The index-th benchmark scene: seeded object count, table colour and capture."""
    rng = np.random.default_rng(7000 + index)
    table = TableSpec(color=TABLE_COLORS[int(rng.integers(len(TABLE_COLORS)))])
    return random_spec(7000 + index, int(rng.integers(3, 7)), table=table, camera=CAPTURES[index % len(CAPTURES)])


def absent_names(spec, count: int, seed: int) -> list[str]:
    """``count`` colour-shape names of the world's vocabulary that name no object of ``spec``."""
    present = {o.name for o in spec.objects}
    names = [f"{c} {s}" for c in COLORS for s in SHAPES if f"{c} {s}" not in present and c != spec.table.color]
    return [names[i] for i in np.random.default_rng(seed).choice(len(names), count, replace=False)]


def reconstructed(dataset, models, config, path: Path | None) -> tuple[QueryableScene, float]:
    """The scene of ``dataset``'s capture: read from ``path`` when cached, else reconstructed (and cached);
    and the seconds the reconstruction took (0 when read)."""
    if path is not None:  # the cache directory is the engine's scene directory
        config = dataclasses.replace(
            config, node=dataclasses.replace(config.node, scene_dir=str(path.parent.resolve()))
        )
    engine = LangScene(config, models)
    if path is not None and path.is_file():
        return engine.load(path), 0.0
    start = time.perf_counter()
    queryable = engine.reconstruct(mode_keyframes(dataset, "dense", config.keyframe))
    seconds = time.perf_counter() - start
    if path is not None:
        engine.save(path)
    return queryable, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_config(REPO / "config" / "demo.yaml")
    models = load_models(config.models, config.densify)
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    records, absent, per_scene = [], [], []
    for index in range(args.scenes):
        spec = scene_spec(index)
        world = build_world(spec)
        dataset = render_dataset(world)
        cached = None if args.cache is None else args.cache / f"scene_{index}.ply"
        queryable, seconds = reconstructed(dataset, models, config, cached)
        result = evaluate(dataset, queryable.scene, models, config, world)
        records += [r for r in result["per_query"] if r["kind"] == "3d"]
        absent += [(name, queryable.answer(name).object_box is not None) for name in absent_names(spec, 2, index)]
        per_scene.append(
            {
                "capture": spec.camera.trajectory,
                "size": [spec.camera.width, spec.camera.height],
                "objects": [o.name for o in spec.objects],
                "table": spec.table.color,
                "reconstruct_s": round(seconds, 1),
                "loc_acc": result["loc_acc"],
                "miou": result["miou"],
            }
        )
    errors = [r["center_error_m"] for r in records]
    located = [e is not None and e < LOCATED_M for e in errors]
    found = [e for e in errors if e is not None]
    grasps = sum(r["grasps"] for r in records)
    valid = sum(r["grasps_valid"] for r in records)
    common = {"scenes": per_scene, "objects": len(records)}
    print(
        json.dumps(
            {
                "bench": "unseen_scenes_located",
                "value": round(float(np.mean(located)), 3),
                "unit": "fraction",
                "target": 1.0,
                "criterion_m": LOCATED_M,
                "missed": [r["name"] for r, ok in zip(records, located) if not ok],
                "per_object": [
                    [
                        r["name"],
                        None if r["center_error_m"] is None else round(r["center_error_m"] * 100, 2),
                        r["grasps"],
                        r["grasps_valid"],
                    ]
                    for r in records
                ],
                **common,
            }
        )
    )
    print(
        json.dumps(
            {
                "bench": "unseen_scenes_centre_error",
                "value": round(float(np.median(found)) * 100, 2) if found else None,
                "unit": "cm",
                "target": 1.0,
                "max_cm": round(float(np.max(found)) * 100, 2) if found else None,
            }
        )
    )
    print(
        json.dumps(
            {
                "bench": "unseen_scenes_grasps_valid",
                "value": round(valid / grasps, 3) if grasps else None,
                "unit": "fraction",
                "target": 1.0,
                "grasps": grasps,
                "valid": valid,
                "objects_with_a_valid_grasp": sum(r["grasps_valid"] > 0 for r in records),
            }
        )
    )
    best = [r["best_grasp_valid"] for r in records if r["best_grasp_valid"] is not None]
    print(
        json.dumps(
            {
                "bench": "unseen_scenes_best_grasp_valid",
                "value": round(float(np.mean(best)), 3) if best else None,
                "unit": "fraction",
                "target": 1.0,
                "objects_with_grasps": len(best),
                "valid": int(sum(best)),
                "note": "the first grasp of each answer, the one a planner executes",
            }
        )
    )
    print(
        json.dumps(
            {
                "bench": "unseen_scenes_absent_answered",
                "value": round(float(np.mean([a for _, a in absent])), 3),
                "unit": "fraction",
                "target": 0.0,
                "answered": [name for name, a in absent if a],
                "note": "absent objects for which an object was returned (tiny-clip confuses names sharing a "
                "colour or a shape)",
            }
        )
    )


if __name__ == "__main__":
    main()
