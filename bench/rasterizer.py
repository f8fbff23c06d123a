"""CPU rasteriser benchmark: 10k Gaussians at 160x120, forward + backward, median seconds, and the
largest difference to the brute-force per-pixel reference (values and gradients).

Prints one JSON line (DESIGN.md section 7). Timings on a shared 2-core machine are noisy: the line
records the load average at the start.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time

import torch

from langscene_core.field.rasterize import rasterize
from langscene_core.field.reference import rasterize_brute_force

N, WIDTH, HEIGHT, REPEATS = 10_000, 160, 120, 7


def scene(seed: int = 0):
    """10k random Gaussians in front of an identity camera with a 60 degree field of view."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(N, 3, generator=g) - 0.5) * torch.tensor([2.4, 1.8, 1.0]) + torch.tensor([0.0, 0.0, 3.0])
    params = [
        means,
        torch.randn(N, 4, generator=g),
        torch.rand(N, 3, generator=g) * 0.05 + 0.005,
        torch.rand(N, generator=g) * 0.95 + 0.04,
        torch.rand(N, 3, generator=g),
    ]
    f = 0.5 * WIDTH / math.tan(math.radians(30))
    Ks = torch.tensor([[[f, 0, WIDTH / 2], [0, f, HEIGHT / 2], [0, 0, 1.0]]])
    return params, torch.eye(4)[None], Ks


def forward_backward(fn, params, viewmats, Ks):
    leaves = [p.clone().requires_grad_(True) for p in params]
    colors, alphas = fn(*leaves, viewmats, Ks, WIDTH, HEIGHT)[:2]
    (colors.sum() + (colors**2).sum() + alphas.sum()).backward()
    return torch.cat([colors, alphas], -1).detach(), [leaf.grad for leaf in leaves]


def main() -> None:
    torch.set_num_threads(2)
    load = os.getloadavg()[0]
    params, viewmats, Ks = scene()
    forward_backward(rasterize, params, viewmats, Ks)  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        image, grads = forward_backward(rasterize, params, viewmats, Ks)
        times.append(time.perf_counter() - start)
    ref_image, ref_grads = forward_backward(rasterize_brute_force, params, viewmats, Ks)
    value_error = (image - ref_image).abs().max().item()
    grad_error = max(((g - r).abs().max() / r.abs().max().clamp_min(1e-12)).item() for g, r in zip(grads, ref_grads))
    print(
        json.dumps(
            {
                "bench": "rasterizer_fwd_bwd_10k_160x120",
                "value": round(statistics.median(times), 4),
                "unit": "s",
                "target": 0.25,
                "max_value_error": value_error,
                "max_relative_grad_error": grad_error,
                "error_target": 1e-4,
                "min_s": round(min(times), 4),
                "repeats": REPEATS,
                "load_avg_1min": load,
            }
        )
    )


if __name__ == "__main__":
    main()
