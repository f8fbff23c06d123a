"""trimap_small_cpu_per_frame: seconds per generated frame of the TriMap pipeline on the CPU.

Runs the bundled model (bundled:tiny-trimap) when it is installed, else a small random model of the
same architecture (tiny_trimap_config). Per frame = wall time of one full generation (text encoding,
condition encoding, all denoising steps with classifier-free guidance, VAE decoding) / frames.
The design gives no target ("report"), so target is null. Timings on a shared CPU are noisy.
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from langscene_core.config import TrimapModelConfig
from langscene_core.trimap.loading import build_tiny_pipeline, load_trimap

FRAMES, STEPS, GUIDANCE = 17, 20, 6.0
HEIGHT, WIDTH = 64, 96
REPEATS = 3


def main() -> None:
    torch.set_num_threads(2)
    try:
        pipe, model = load_trimap(TrimapModelConfig(path="bundled:tiny-trimap", dtype="float32")), "bundled:tiny-trimap"
    except FileNotFoundError:
        pipe, model = build_tiny_pipeline(), "tiny_trimap_config (random weights)"
    pipe.set_progress_bar_config(disable=True)
    first, last = torch.rand(3, HEIGHT, WIDTH), torch.rand(3, HEIGHT, WIDTH)
    pipe(first, last, num_frames=9, num_inference_steps=1)  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        pipe(
            first,
            last,
            num_frames=FRAMES,
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            generator=torch.Generator().manual_seed(0),
        )
        times.append(time.perf_counter() - start)
    per_frame = statistics.median(times) / FRAMES
    print(
        json.dumps(
            {
                "bench": "trimap_small_cpu_per_frame",
                "value": round(per_frame, 4),
                "unit": "s",
                "target": None,
                "model": model,
                "frames": FRAMES,
                "steps": STEPS,
                "guidance": GUIDANCE,
                "height": HEIGHT,
                "width": WIDTH,
                "threads": torch.get_num_threads(),
                "transformer_params": sum(p.numel() for p in pipe.transformer.parameters()),
                "runs_s": [round(t, 3) for t in times],
            }
        )
    )


if __name__ == "__main__":
    main()
