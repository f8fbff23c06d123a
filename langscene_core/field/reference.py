"""Brute-force per-pixel Gaussian compositing: the oracle the tile rasteriser is tested and benchmarked against.

Every pixel composites every visible Gaussian (no tiles, no binning, no padding) with gsplat's rules,
so a mistake in the tile compositor's binning, sorting, grouping or masking shows up as a difference.
Slow (O(H W N)); meant for tests and ``bench/rasterizer.py`` only. The rules' constants are written
here from gsplat 1.5.3 itself (``RasterizeToPixels3DGSFwd.cu``; ``clamp_max(..., 0.999)`` in
``gsplat/cuda/_torch_impl.py``), not imported from the compositor under test. gsplat's own torch
reference (``_torch_impl._rasterize_to_pixels``) cannot be the oracle: it needs CUDA kernels and nerfacc.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from langscene_core.field.rasterize import project

ALPHA_MAX = 0.999  # one Gaussian's alpha is clamped here
ALPHA_MIN = 1.0 / 255.0  # a Gaussian below this alpha is skipped
T_MIN = 1e-4  # a pixel stops before the Gaussian that would bring its transmittance to this or below


def rasterize_brute_force(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    features: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    pixel_chunk: int = 1024,
) -> tuple[Tensor, Tensor]:
    """Same inputs as ``rasterize`` with features [N, D] and no background.

    Returns colors [C, H, W, D] and alphas [C, H, W, 1]; differentiable (chunks are checkpointed so the
    memory stays at one chunk of [pixel_chunk, N]).
    """
    radii, means2d, depths, conics = project(
        means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d
    )
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means.dtype), torch.arange(width, dtype=means.dtype), indexing="ij"
    )
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1) + 0.5  # [HW, 2]
    renders, alphas = [], []
    for c in range(viewmats.shape[0]):
        visible = torch.nonzero((radii[c] > 0).all(dim=-1)).squeeze(1)
        order = visible[torch.argsort(depths[c, visible], stable=True)]
        args = (means2d[c, order], conics[c, order], opacities[order], features[order])
        chunks = [
            checkpoint(_composite_pixels, pixels[s : s + pixel_chunk], *args, use_reentrant=False)
            for s in range(0, len(pixels), pixel_chunk)
        ]
        out = torch.cat(chunks)  # [HW, D + 1]
        renders.append(out[:, :-1].reshape(height, width, -1))
        alphas.append(out[:, -1:].reshape(height, width, 1))
    return torch.stack(renders), torch.stack(alphas)


def _composite_pixels(pixels: Tensor, means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor) -> Tensor:
    """pixels [P, 2]; Gaussians already sorted near to far. Returns [P, D + 1] (colour, alpha)."""
    dx = pixels[:, None, 0] - means2d[None, :, 0]
    dy = pixels[:, None, 1] - means2d[None, :, 1]
    sigma = 0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) + conics[:, 1] * dx * dy
    alpha = torch.clamp_max(opacities * torch.exp(-sigma), ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    trans_after = torch.cumprod(1.0 - alpha, dim=-1)
    trans_before = torch.cat([torch.ones_like(trans_after[:, :1]), trans_after[:, :-1]], dim=-1)
    weights = alpha * trans_before * (trans_after.detach() > T_MIN)
    return torch.cat([weights @ colors, weights.sum(-1, keepdim=True)], dim=-1)
