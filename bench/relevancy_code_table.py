"""Bench `relevancy_code_table_speedup_1M`: relevancy of 1M Gaussians' LQC latents through the code table
(relevancy of the K=2048 decoded codes once, gathered by each Gaussian's code index, as
``langscene_core.query.answer.scene_relevancy`` does on every query) versus decoding every
Gaussian's latent to 512-d and taking its relevancy. Both must give the same numbers.

The direct path is timed at its cheapest: the decoder on each Gaussian's code vector (no nearest-code
search); ``direct_with_snap_s`` also times ``LQC.decode`` as the query would call it on raw latents.
Snapping latents to codes is done once per scene, not per query: ``snap_once_s``.
Timings are medians; other processes loading the CPU make them noisy.
"""

from __future__ import annotations

import json
import statistics
import time

import torch
import torch.nn.functional as F

from langscene_core.config import LqcTrainConfig
from langscene_core.language.lqc import LQC
from langscene_core.language.relevancy import relevancy

GAUSSIANS = 1_000_000
CHUNK = 65536
REPEATS = 3


def timed(fn, repeats=REPEATS):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


@torch.no_grad()
def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = LQC(LqcTrainConfig()).eval()  # speed does not depend on training; sizes are the real ones
    model.codebook.copy_(torch.rand(model.config.codebook_size, model.config.latent_dim) * 2 - 1)
    latents = torch.rand(GAUSSIANS, model.config.latent_dim) * 2 - 1
    query = F.normalize(torch.randn(model.config.feature_dim), dim=0)
    negatives = F.normalize(torch.randn(4, model.config.feature_dim), dim=1)  # object, things, stuff, texture

    snap_s, codes = timed(lambda: model.code_of(latents), repeats=1)

    def direct():
        return torch.cat(
            [
                relevancy(F.normalize(model.decoder(model.codebook[codes[i : i + CHUNK]]), dim=-1), query, negatives)
                for i in range(0, GAUSSIANS, CHUNK)
            ]
        )

    def direct_with_snap():
        return torch.cat(
            [relevancy(model.decode(latents[i : i + CHUNK]), query, negatives) for i in range(0, GAUSSIANS, CHUNK)]
        )

    def through_table():
        return relevancy(model.code_features(), query, negatives, unit_features=True)[codes]

    table_s, table = timed(through_table, repeats=7)
    direct_s, reference = timed(direct)
    snap_direct_s, reference_snap = timed(direct_with_snap, repeats=1)
    print(
        json.dumps(
            {
                "bench": "relevancy_code_table_speedup_1M",
                "value": round(direct_s / table_s, 1),
                "unit": "x",
                "target": 50,
                "gaussians": GAUSSIANS,
                "codes": model.config.codebook_size,
                "table_s": round(table_s, 4),
                "direct_s": round(direct_s, 3),
                "direct_with_snap_s": round(snap_direct_s, 3),
                "snap_once_s": round(snap_s, 3),
                "max_abs_diff": float((table - reference).abs().max()),
                "max_abs_diff_with_snap": float((table - reference_snap).abs().max()),
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
