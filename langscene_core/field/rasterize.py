"""One rasterization entry for 3D Gaussians: gsplat on CUDA, a vectorised tile compositor on the CPU.

``rasterize`` mirrors ``gsplat.rasterization`` (unbatched, unpacked): the same arguments, the same
``(render_colors, render_alphas, meta)`` result. CUDA tensors go to gsplat itself. gsplat 1.5 ships no
CPU rasteriser (its ``rasterization`` needs CUDA and its pure-torch ``_isect_tiles`` is a per-Gaussian
Python loop), so CPU tensors go through gsplat's pure-torch projection (``gsplat.cuda._torch_impl``,
autograd) and the hand-written tile compositor of ``langscene_core.field.composite`` (gsplat's
compositing rules, analytic backward).

Frames: ``viewmats`` are world -> camera (OpenCV axes, see ``langscene_core.geometry.camera``); pixel centres
are at integer + 0.5.
"""

from __future__ import annotations

from typing import Any

import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)
from torch import Tensor

from langscene_core.field.composite import CPU_TILE_SIZE, composite

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")


def rasterize(
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
    sh_degree: int | None = None,
    tile_size: int | None = None,
    backgrounds: Tensor | None = None,
    render_mode: str = "RGB",
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render N Gaussians into C images; the backend follows ``means.device``.

    means: [N, 3] float32 world frame. quats: [N, 4] wxyz (need not be normalised).
    scales: [N, 3] standard deviations in metres (not log). opacities: [N] in 0..1 (not logits).
    features: [N, D] or per camera [C, N, D] with ``sh_degree=None`` (any D, e.g. RGB, normals,
    latents), or SH coefficients [N, K, 3] with ``sh_degree`` (colour = SH + 0.5, clamped at 0).
    viewmats: [C, 4, 4] world -> camera. Ks: [C, 3, 3] pinhole intrinsics in pixels.
    tile_size: None = the backend's best (16 for gsplat; CPU_TILE_SIZE for the CPU compositor, where the
    result does not depend on it: binning is conservative and only speed changes).
    backgrounds: [C, D] colour behind the Gaussians (feature channels only; depth gets none).
    render_mode: "RGB" (features), "D" (accumulated depth), "ED" (expected depth: accumulated / alpha),
    "RGB+D", "RGB+ED" (features with depth as the last channel).

    Returns render_colors [C, H, W, X] float32 (X = D, 1 or D + 1), render_alphas [C, H, W, 1] and
    meta with "radii" [C, N, 2] int (0 = not drawn), "means2d" [C, N, 2] pixels (its ``.grad`` after
    backward drives densification), "depths" [C, N] camera z, "conics" [C, N, 3], "width", "height",
    "n_cameras", "gaussian_ids" (None: unpacked) - the keys gsplat's densification strategies read.
    """
    _check_inputs(means, quats, scales, opacities, features, viewmats, Ks, width, height, sh_degree, render_mode)
    if means.is_cuda:
        import gsplat

        return gsplat.rasterization(
            means,
            quats,
            scales,
            opacities,
            features,
            viewmats,
            Ks,
            width,
            height,
            near_plane=near_plane,
            far_plane=far_plane,
            eps2d=eps2d,
            sh_degree=sh_degree,
            tile_size=tile_size or 16,
            backgrounds=backgrounds,
            render_mode=render_mode,
            packed=False,
        )
    return _rasterize_cpu(
        means,
        quats,
        scales,
        opacities,
        features,
        viewmats,
        Ks,
        width,
        height,
        near_plane,
        far_plane,
        eps2d,
        sh_degree,
        tile_size or CPU_TILE_SIZE,
        backgrounds,
        render_mode,
    )


def _check_inputs(
    means, quats, scales, opacities, features, viewmats, Ks, width, height, sh_degree, render_mode
) -> None:
    n = means.shape[0]
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means must be [N, 3], got {tuple(means.shape)}")
    if quats.shape != (n, 4) or scales.shape != (n, 3) or opacities.shape != (n,):
        raise ValueError(
            f"quats [N, 4], scales [N, 3], opacities [N] expected for N={n}, got "
            f"{tuple(quats.shape)}, {tuple(scales.shape)}, {tuple(opacities.shape)}"
        )
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4) or Ks.shape != (viewmats.shape[0], 3, 3):
        raise ValueError(f"viewmats must be [C, 4, 4] and Ks [C, 3, 3], got {tuple(viewmats.shape)}, {tuple(Ks.shape)}")
    if sh_degree is None and not (
        features.ndim == 2
        and features.shape[0] == n
        or features.ndim == 3
        and features.shape[:2] == (viewmats.shape[0], n)
    ):
        raise ValueError(f"features must be [N, D] or [C, N, D] without sh_degree, got {tuple(features.shape)}")
    if sh_degree is not None and (
        features.ndim != 3
        or features.shape[0] != n
        or features.shape[2] != 3
        or features.shape[1] < (sh_degree + 1) ** 2
    ):
        raise ValueError(f"SH features must be [N, K>={(sh_degree or 0) + 1}**2, 3], got {tuple(features.shape)}")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def project(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """gsplat's pure-torch EWA projection.

    Returns radii [C, N, 2] int32 (0 = culled), means2d [C, N, 2] pixels, depths [C, N] camera z,
    conics [C, N, 3] (upper triangle of the inverse 2-D covariance, eps2d blur included).
    """
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_covar=True, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane
    )
    return radii, means2d, depths, conics


def view_colors(means: Tensor, features: Tensor, viewmats: Tensor, sh_degree: int | None) -> Tensor:
    """Per-camera features [C, N, D]: SH evaluated towards each camera (gsplat's +0.5, clamp 0) or as given."""
    n_cams = viewmats.shape[0]
    if sh_degree is None:
        return features if features.ndim == 3 else features.expand(n_cams, -1, -1)
    campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3] world
    dirs = means[None, :, :] - campos[:, None, :]  # [C, N, 3]
    shs = features[None].expand(n_cams, -1, -1, -1)
    return torch.clamp_min(_spherical_harmonics(sh_degree, dirs, shs) + 0.5, 0.0)


def _rasterize_cpu(
    means,
    quats,
    scales,
    opacities,
    features,
    viewmats,
    Ks,
    width,
    height,
    near_plane,
    far_plane,
    eps2d,
    sh_degree,
    tile_size,
    backgrounds,
    render_mode,
):
    radii, means2d, depths, conics = project(
        means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d
    )
    if means2d.requires_grad:
        means2d.retain_grad()
    colors = view_colors(means, features, viewmats, sh_degree)  # [C, N, D]
    n_cams = viewmats.shape[0]
    if render_mode in ("RGB+D", "RGB+ED"):
        colors = torch.cat([colors, depths[..., None]], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(n_cams, 1)], dim=-1)
    elif render_mode in ("D", "ED"):
        colors = depths[..., None]
        backgrounds = None
    renders, alphas = [], []
    for c in range(n_cams):
        image, alpha = composite(
            means2d[c], conics[c], opacities, colors[c], depths[c], radii[c], width, height, tile_size
        )
        if backgrounds is not None:
            image = image + (1.0 - alpha) * backgrounds[c]
        renders.append(image)
        alphas.append(alpha)
    render_colors, render_alphas = torch.stack(renders), torch.stack(alphas)
    if render_mode in ("ED", "RGB+ED"):
        render_colors = torch.cat(
            [render_colors[..., :-1], render_colors[..., -1:] / render_alphas.clamp(min=1e-10)], dim=-1
        )
    meta = {
        "radii": radii,
        "means2d": means2d,
        "depths": depths,
        "conics": conics,
        "width": width,
        "height": height,
        "n_cameras": n_cams,
        "gaussian_ids": None,
        "tile_size": tile_size,
    }
    return render_colors, render_alphas, meta
