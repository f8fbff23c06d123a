"""Render a ``Gaussians`` model from one camera: colour, surface normal, expected depth, alpha, latents.

All requested maps come out of ONE ``rasterize`` call (features concatenated on the channel axis), so
the compositing weights are computed once per view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from langscene_core.field.composite import CompositingMatrix, compositing_matrix
from langscene_core.field.gaussians import Gaussians
from langscene_core.field.rasterize import project, rasterize, view_colors
from langscene_core.geometry.camera import Intrinsics, invert_pose


@dataclass
class RenderOutput:
    """Maps of one view (H x W of its intrinsics); a map not requested is None.

    rgb [H, W, 3] 0..1; normal [H, W, 3] world frame, alpha-weighted (not renormalised);
    depth [H, W] expected camera z (metres); alpha [H, W]; latents [L, H, W, 3];
    meta: the rasteriser's meta dict (radii, means2d, ... for densification).
    """

    alpha: Tensor
    depth: Tensor
    meta: dict[str, Any]
    rgb: Tensor | None = None
    normal: Tensor | None = None
    latents: Tensor | None = None


def camera_tensors(
    intrinsics: Intrinsics, cam_to_world: np.ndarray, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """viewmats [1, 4, 4] (world -> camera) and Ks [1, 3, 3] float32 for ``rasterize``."""
    viewmat = torch.as_tensor(invert_pose(np.asarray(cam_to_world, dtype=np.float64)), dtype=torch.float32)
    K = torch.as_tensor(intrinsics.K, dtype=torch.float32)
    return viewmat[None].to(device), K[None].to(device)


def facing_normals(gaussians: Gaussians, camera_position: Tensor) -> Tensor:
    """[N, 3] each Gaussian's shortest axis (world frame), flipped to point towards the camera."""
    normals = gaussians.surface_normals()
    towards = camera_position[None, :] - gaussians.means.detach()
    sign = torch.where((normals * towards).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    return normals * sign


def render(
    gaussians: Gaussians,
    intrinsics: Intrinsics,
    cam_to_world: np.ndarray,
    rgb: bool = True,
    normal: bool = True,
    latents: bool = False,
    background: Tensor | None = None,
) -> RenderOutput:
    """Render the requested maps; differentiable w.r.t. every Gaussian parameter.

    background: optional [3] colour behind the scene (applies to rgb only).
    """
    device = gaussians.means.device
    viewmats, Ks = camera_tensors(intrinsics, cam_to_world, device)
    parts, sizes = [], {}
    if rgb:
        parts.append(view_colors(gaussians.means, gaussians.sh, viewmats, gaussians.sh_degree)[0])
        sizes["rgb"] = 3
    if normal:
        campos = torch.as_tensor(np.asarray(cam_to_world)[:3, 3], dtype=torch.float32, device=device)
        parts.append(facing_normals(gaussians, campos))
        sizes["normal"] = 3
    if latents:
        parts.append(gaussians.latents.reshape(len(gaussians), -1))
        sizes["latents"] = 3 * gaussians.levels
    features = torch.cat(parts, dim=-1) if parts else gaussians.means.new_zeros(len(gaussians), 0)
    backgrounds = None
    if background is not None:
        backgrounds = torch.zeros(1, features.shape[-1], device=device)
        if rgb:
            backgrounds[0, :3] = background
    colors, alphas, meta = rasterize(
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        features,
        viewmats,
        Ks,
        intrinsics.width,
        intrinsics.height,
        backgrounds=backgrounds,
        render_mode="RGB+ED",
    )
    maps = torch.split(colors[0], list(sizes.values()) + [1], dim=-1)
    out = RenderOutput(alpha=alphas[0, ..., 0], depth=maps[-1][..., 0], meta=meta)
    for (name, _), value in zip(sizes.items(), maps[:-1]):
        if name == "latents":
            value = value.reshape(intrinsics.height, intrinsics.width, gaussians.levels, 3).permute(2, 0, 1, 3)
        setattr(out, name, value)
    return out


@torch.no_grad()
def compositing_operator(gaussians: Gaussians, intrinsics: Intrinsics, cam_to_world: np.ndarray) -> CompositingMatrix:
    """The view's compositing for the CURRENT geometry as a sparse linear map (CPU Gaussians only):
    while means, rotations, scales and opacities stay fixed, ``render_latents`` with it equals
    ``render(..., latents=True).latents`` at the cost of two sparse products."""
    if gaussians.means.is_cuda:
        raise ValueError("compositing_operator is for CPU Gaussians; on CUDA render() uses gsplat")
    viewmats, Ks = camera_tensors(intrinsics, cam_to_world)
    radii, means2d, depths, conics = project(
        gaussians.means, gaussians.quats, gaussians.scales, viewmats, Ks, intrinsics.width, intrinsics.height
    )
    return compositing_matrix(
        means2d[0], conics[0], gaussians.opacities, depths[0], radii[0], intrinsics.width, intrinsics.height
    )


def render_latents(operator: CompositingMatrix, gaussians: Gaussians, intrinsics: Intrinsics) -> Tensor:
    """[L, H, W, 3] latent maps through ``compositing_operator``'s map; differentiable w.r.t. the latents."""
    flat = operator.apply(gaussians.latents.reshape(len(gaussians), -1))  # [H * W, L * 3]
    return flat.reshape(intrinsics.height, intrinsics.width, gaussians.levels, 3).permute(2, 0, 1, 3)
