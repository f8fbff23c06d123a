"""Held-out suite: every evaluation mode side by side, development and fresh seeds apart (DESIGN.md 6).

Scenes are seeded tabletops (:func:`scene_spec`: 3-6 objects, a random table colour) captured by the
world's default 24-view orbit at 160x120. Two splits of seeds (:data:`SPLITS`):

- ``dev``: 7000 + i, the scenes ``bench/unseen_scenes.py`` ran on since session 5; ``query.rival_margin``
  and two query rules were tuned on them, so they score development, not generalisation;
- ``fresh``: 8_000_000 + i, far from every training range (tiny-clip 0-299 and 1_000_000+, tiny-lqc
  2_000_000+, tiny-trimap 4_000_000+) and never looked at while tuning.

Each scene is evaluated in each mode by :func:`langscene_core.eval.evaluate.evaluate_mode` (dense: every
capture frame through keyframe selection; sparse, sparse_trimap, baseline_2d: the first frame and the
one ``SPARSE_ARC_DEG`` away, inside the bundled TriMap's 15-60 degree training arcs), with three absent
prompts (:func:`absent_prompts`). A row per (split, mode) pools the split's queries: LERF-OVS loc_acc
and mIoU (LangSplat's protocol), mean centre error, located within ``LOCATED_M``, grasps valid (of
all, and of the answers located within ``LOCATED_M``), best grasp valid, absent prompts answered, mean reconstruct time and the generated frames that reached the
field. :func:`write_suite` writes ``suite.json`` and ``suite.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from langscene_core.config import LangsceneConfig
from langscene_core.eval.evaluate import LOCATED_M, MODES, SPARSE_ARC_DEG, evaluate_mode, mode_config, summarize
from langscene_core.reconstruction.models import Models
from langscene_core.reconstruction.reconstruct import ReconstructionError
from langscene_core.sim import build_world, render_dataset
from langscene_core.sim.generate import random_spec
from langscene_core.sim.spec import COLORS, SHAPES, CameraSpec, TableSpec, WorldSpec

SPLITS = {"dev": 7000, "fresh": 8_000_000}  # first seed of each split (module docstring)
TABLE_COLORS = ("gray", "brown", "white", "black")
OUTSIDE_VOCABULARY = ("purple elephant", "laptop", "banana", "wooden chair", "tennis racket", "smartphone")


def scene_spec(seed: int, camera: CameraSpec = CameraSpec()) -> WorldSpec:
    """The tabletop of ``seed``: seeded object count (3-6) and table colour, captured by ``camera``."""
    rng = np.random.default_rng(seed)
    table = TableSpec(color=TABLE_COLORS[int(rng.integers(len(TABLE_COLORS)))])
    return random_spec(seed, int(rng.integers(3, 7)), table=table, camera=camera)


def absent_prompts(spec: WorldSpec, seed: int) -> list[tuple[str, str]]:
    """Three (kind, prompt) naming nothing in ``spec``: "vocabulary" a colour-shape name of another
    colour than the table's, "table_colour" the table's colour with a shape (objects never take the
    table's colour: the table itself matches it), "outside_vocabulary" a phrase the CLIP vocabulary
    does not hold."""
    present = {o.name for o in spec.objects}
    rng = np.random.default_rng(seed)
    names = [f"{c} {s}" for c in COLORS for s in SHAPES if f"{c} {s}" not in present and c != spec.table.color]
    table = [f"{spec.table.color} {s}" for s in SHAPES if f"{spec.table.color} {s}" not in present]
    return [
        ("vocabulary", names[int(rng.integers(len(names)))]),
        ("table_colour", table[int(rng.integers(len(table)))]),
        ("outside_vocabulary", OUTSIDE_VOCABULARY[int(rng.integers(len(OUTSIDE_VOCABULARY)))]),
    ]


def run_suite(
    counts: dict[str, int],
    modes: Sequence[str],
    config: LangsceneConfig,
    load: Callable[[LangsceneConfig], Models],
    log: Callable[[str], None] = print,
    starts: dict[str, int] | None = None,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``counts[split]`` scenes of each split in every mode of ``modes``.

    config: the pipeline settings (each mode gets :func:`mode_config`); load: models for a config
    (called once per densification mode). starts: per split, the index of its first scene (seed
    ``SPLITS[split] + start``; 0 when absent): a range of the split no earlier run looked at.
    cache: folder of reconstructed scenes, ``<mode>_<seed>.ply``, read when present and written when
    not, so a second run re-grades the same reconstructions (None: always reconstruct). Returns {"rows": [row per (split, mode)], "scenes": [result
    per (scene, mode) with "split", "seed", "seconds"], "modes", "counts", "sparse_arc_deg",
    "located_m"}; a reconstruction that fails is a scene result with "error" and no metrics."""
    if unknown := [m for m in modes if m not in MODES]:
        raise ValueError(f"unknown evaluation mode(s) {unknown}; expected some of {', '.join(MODES)}")
    if unknown := [s for s in counts if s not in SPLITS]:
        raise ValueError(f"unknown split(s) {unknown}; expected some of {', '.join(SPLITS)}")
    if bad := {s: n for s, n in (starts or {}).items() if s not in SPLITS or n < 0}:
        raise ValueError(f"scene starts {bad}: expected a split of {', '.join(SPLITS)} and an index >= 0")
    models: dict[str, Models] = {}
    scenes = []
    for split, count in counts.items():
        first = (starts or {}).get(split, 0)
        for index in range(first, first + count):
            seed = SPLITS[split] + index
            spec = scene_spec(seed)
            dataset = render_dataset(build_world(spec))
            absent = [prompt for _, prompt in absent_prompts(spec, seed)]
            for mode in modes:
                mode_settings = mode_config(config, mode)
                key = mode_settings.densify.mode
                if key not in models:
                    models[key] = load(mode_settings)
                start = time.perf_counter()
                try:
                    result = evaluate_mode(
                        dataset,
                        mode,
                        models[key],
                        mode_settings,
                        absent=absent,
                        scene_cache=None if cache is None or mode == "baseline_2d" else cache / f"{mode}_{seed}.ply",
                    )
                except ReconstructionError as exc:
                    result = {"mode": mode, "error": str(exc)}
                result.update(split=split, seed=seed, seconds=round(time.perf_counter() - start, 1))
                scenes.append(result)
                log(_scene_line(result))
    rows = [
        _row(split, mode, [s for s in scenes if s["split"] == split and s["mode"] == mode])
        for split in counts
        for mode in modes
    ]
    return {
        "rows": rows,
        "scenes": scenes,
        "modes": list(modes),
        "counts": dict(counts),
        "seeds": {
            split: [s["seed"] for s in scenes if s["split"] == split and s["mode"] == modes[0]] for split in counts
        },
        "sparse_arc_deg": SPARSE_ARC_DEG,
        "located_m": LOCATED_M,
    }


def _scene_line(result: dict[str, Any]) -> str:
    """One console line per (scene, mode)."""
    head = f"[eval-suite] {result['split']} seed {result['seed']} {result['mode']}:"
    if "error" in result:
        return f"{head} reconstruction failed ({result['error']}) in {result['seconds']} s"
    return (
        f"{head} loc_acc {_fmt(result['loc_acc'])} miou {_fmt(result['miou'])} located {_fmt(result['located_rate'])} "
        f"absent answered {_fmt(result['absent_answered_rate'])}; {result['generated_frames_used']} generated "
        f"frames reached the field; {result['seconds']} s"
    )


def _row(split: str, mode: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The (split, mode) row: the metrics of :func:`summarize` over the pooled queries of its scenes."""
    done = [r for r in results if "error" not in r]
    pooled = summarize([q for r in done for q in r["per_query"]], done[0]["box_filter_px"] if done else None)
    pooled.pop("per_query")
    return {
        "split": split,
        "mode": mode,
        "scenes": len(results),
        "failed": len(results) - len(done),
        **pooled,
        "reconstruct_s": round(float(np.mean([r["reconstruct_s"] for r in done])), 1) if done else None,
        "generated_frames_used": sum(r["generated_frames_used"] for r in done),
    }


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def markdown_table(suite: dict[str, Any]) -> str:
    """The rows of :func:`run_suite` as a Markdown table."""
    lines = [
        "| split | mode | scenes | loc_acc | mIoU | centre err. cm | located <= 2 cm | grasps valid "
        "| grasps valid (located) | best grasp valid | best valid / oracle graspable | absent answered "
        "| reconstruct s | generated frames |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in suite["rows"]:
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        lines.append(
            f"| {r['split']} | {r['mode']} | {r['scenes']}{failed} | {_fmt(r['loc_acc'])} | {_fmt(r['miou'])} "
            f"| {_fmt(r['center_error_m'], 100, 2)} | {_fmt(r['located_rate'])} | {_fmt(r['grasp_valid_rate'])} "
            f"| {_fmt(r.get('located_grasp_valid_rate'))} | {_fmt(r['best_grasp_valid_rate'])} | {_fmt(r.get('best_valid_of_graspable'))} "
            f"({r.get('oracle_graspable', 0)}) | {_fmt(r['absent_answered_rate'])} "
            f"| {_fmt(r['reconstruct_s'], 1, 1)} | {r['generated_frames_used']} |"
        )
    return "\n".join(lines) + "\n"


def shape_table(suite: dict[str, Any]) -> str:
    """Grasps per shape for every (split, mode) row of :func:`run_suite` as a Markdown table: objects,
    oracle-graspable, best grasp valid of those, grasps valid of all returned and of the answers located
    within ``LOCATED_M`` (the planner's own figure: an answer on another object is the language's miss)."""
    lines = [
        "| split | mode | shape | objects | oracle graspable | best grasp valid / graspable | grasps valid "
        "| grasps valid (located) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in suite["rows"]:
        for shape, s in r.get("per_shape", {}).items():
            lines.append(
                f"| {r['split']} | {r['mode']} | {shape} | {s['objects']} | {s['oracle_graspable']} "
                f"| {_fmt(s['best_valid_of_graspable'])} | {_fmt(s['grasp_valid_rate'])} ({s['grasps']}) "
                f"| {_fmt(s.get('located_grasp_valid_rate'))} |"
            )
    return "\n".join(lines) + "\n"


def write_suite(suite: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``out/suite.json`` (everything, per-query records included) and ``out/suite.md`` (the table)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.json").write_text(json.dumps(suite, indent=1))
    (out / "suite.md").write_text(markdown_table(suite) + "\n" + shape_table(suite))
    return out / "suite.json", out / "suite.md"
