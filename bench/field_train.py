"""Training speed of the language surface field at the demo resolution (160x120, world seed 0).

Prints one JSON line per stage (DESIGN.md section 7 format): geometry (stage A: rgb + depth + flatten +
normal losses, densification bookkeeping) and language (stage B: latent L2 + L_s2d + L_s3d) steps per
second, timed from the progress report after the first step to the one after the last, so that the
one-time set-up (stage B builds each view's compositing matrix for the frozen geometry) is apart:
``setup_s`` is the time before the first step began.
Target: 10 steps/s, what fits ~2000 steps into the demo's 300 s budget. Timings on a shared 2-core
machine are noisy: each line records the load average at the start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import torch

from langscene_core.config import FieldConfig
from langscene_core.field.gaussians import Gaussians
from langscene_core.field.train import train_geometry, train_language
from langscene_core.field.views import TrainView
from langscene_core.sim import build_world, capture_poses, intrinsics_of, random_spec, render

STEPS = 20
TARGET_STEPS_PER_S = 10.0


def world_views() -> list[TrainView]:
    """24 capture views of world seed 0 with per-instance random latent targets at all three levels."""
    spec = random_spec(seed=0, count=4)
    frames = render(build_world(spec), intrinsics_of(spec.camera), capture_poses(spec.camera))
    codes = np.random.default_rng(0).uniform(-1, 1, (3, len(spec.objects) + 2, 3)).astype(np.float32)
    views = []
    for f in frames:
        ids = f.ids.astype(np.int64)
        masks = np.stack([ids, ids, np.where(ids > 0, 1, ids)])
        latents = codes[np.arange(3)[:, None, None], masks + 1] * (masks >= 0)[..., None]
        views.append(
            TrainView(
                rgb=f.rgb.astype(np.float32) / 255.0,
                intrinsics=f.intrinsics,
                cam_to_world=f.cam_to_world,
                depth=f.depth,
                normal=f.normals,
                masks=masks,
                latents=latents.astype(np.float32),
            )
        )
    return views


def main() -> None:
    torch.set_num_threads(2)
    views = world_views()
    config = FieldConfig()
    gaussians = Gaussians.from_rgbd(
        views, stride=config.init_stride, max_points=config.init_max_points, sh_degree=config.sh_degree
    )
    for stage, run in (("geometry", train_geometry), ("language", train_language)):
        steps = {"geometry_steps": STEPS} if stage == "geometry" else {"language_steps": STEPS}
        load = os.getloadavg()[0]
        reports: list[float] = []  # time of each progress report (after step 1, ..., after the last)
        start = time.perf_counter()
        run(
            gaussians,
            views,
            dataclasses.replace(config, **steps),
            lambda *_, reports=reports: reports.append(time.perf_counter()),
        )
        rate = (STEPS - 1) / (reports[-1] - reports[0])
        print(
            json.dumps(
                {
                    "bench": f"field_train_{stage}_steps_per_s_160x120",
                    "value": round(rate, 3),
                    "unit": "steps/s",
                    "target": TARGET_STEPS_PER_S,
                    "setup_s": round(reports[0] - start - 1.0 / rate, 3),
                    "gaussians": len(gaussians),
                    "views": len(views),
                    "steps": STEPS,
                    "load_avg_1min": load,
                }
            )
        )


if __name__ == "__main__":
    main()
