"""Whole queries on the 200k-Gaussian bench scene with prompts the other query benches do not time (#22).

The scene is query_roundtrip's (Gaussians on the bench world's surfaces, each with the LQC latent of its
instance). Each prompt is answered in-process as the node answers it (``QueryableScene.answer``: text
relevancy through the code table, object, box, grasps, open-set check), with NO kept text embeddings or
answers: every answer encodes its phrases afresh, as a planner's first-time prompt does. Lines, p50 and
p90 over ``REPEATS`` answers of each prompt of the kind:

- ``query_uncached_200k``: the objects' names (colour + shape);
- ``query_diffuse_200k``: "table", whose relevant set is the whole support surface (the largest
  cloud, cluster and box a query meets);
- ``query_loose_prompts_200k``: category only ("mug", "bowl") and colour only ("something red").
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import torch
from query_roundtrip import build_bench_scene

from langscene_core.config import DEFAULT_CONFIG_PATH, load_config
from langscene_core.engine import QueryableScene
from langscene_core.reconstruction.models import load_models

REPEATS = 5
LOOSE = ("mug", "bowl", "something red", "something blue")


def timed(queryable: QueryableScene, prompts, repeats: int) -> tuple[list[float], list[int]]:
    """Wall ms of each answer and the relevancy cloud size of each prompt's last answer."""
    times, points = [], []
    for prompt in prompts:
        for _ in range(repeats):
            start = time.perf_counter()
            result = queryable.answer(prompt)
            times.append((time.perf_counter() - start) * 1000.0)
        points.append(len(result.cloud))
    return times, points


def main() -> None:
    torch.set_num_threads(2)
    config = load_config(DEFAULT_CONFIG_PATH)
    config = dataclasses.replace(config, query=dataclasses.replace(config.query, answer_cache=0))
    models = load_models(config.models, config.densify)
    scene, names = build_bench_scene(models, config, 200_000)
    queryable = QueryableScene.build(scene, models, config.query, config.grasp, cache=None)  # no text cache
    queryable.answer(names[0])  # warm-up: numba kernels, first allocations
    for bench, prompts in (
        ("query_uncached_200k", names),
        ("query_diffuse_200k", ["table"]),
        ("query_loose_prompts_200k", list(LOOSE)),
    ):
        times, points = timed(queryable, prompts, REPEATS)
        print(
            json.dumps(
                {
                    "bench": bench,
                    "value": round(float(np.percentile(times, 50)), 1),
                    "unit": "ms",
                    "target": 50,
                    "p90_ms": round(float(np.percentile(times, 90)), 1),
                    "max_ms": round(float(np.max(times)), 1),
                    "prompts": list(prompts),
                    "relevant_points": points,
                    "answers": len(times),
                    "note": "in-process, every phrase encoded afresh (no text or answer cache); p50 is the value",
                }
            )
        )


if __name__ == "__main__":
    main()
