"""One rasterization entry for 3D Gaussians: gsplat on CUDA, a vectorised tile compositor on the CPU.

``rasterize`` mirrors ``gsplat.rasterization`` (unbatched, unpacked): the same arguments, the same
``(render_colors, render_alphas, meta)`` result. CUDA tensors go to gsplat itself. gsplat 1.5 ships no
CPU rasteriser (its ``rasterization`` needs CUDA and its pure-torch ``_isect_tiles`` is a per-Gaussian
Python loop), so CPU tensors go through gsplat's pure-torch projection (``gsplat.cuda._torch_impl``) and
the hand-written compositor below, which follows gsplat's compositing rules exactly:
alpha = min(0.99, opacity * exp(-sigma)), Gaussians with sigma < 0 or alpha < 1/255 are skipped, and a
pixel stops at the Gaussian whose transmittance would fall to 1e-4 or below. Backward is torch autograd.

Frames: ``viewmats`` are world -> camera (OpenCV axes, see ``langscene_core.camera``); pixel centres
are at integer + 0.5.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)
from torch import Tensor

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
ALPHA_MAX = 0.99  # gsplat's clamp of a single Gaussian's alpha
ALPHA_MIN = 1.0 / 255.0  # gsplat skips Gaussians below this alpha
T_MIN = 1e-4  # gsplat stops a pixel when transmittance would drop to this
# Elements ([tiles, pixels per tile, Gaussians per tile]) composited in one vectorised group; bounds
# the memory autograd keeps (~10 float32 tensors of this size).
GROUP_ELEMENTS = 1 << 21
# Small tiles waste less work on pixels outside a Gaussian's footprint; 4 was fastest on 2 cores
# (10k Gaussians, 160x120, other agents loading the CPU: 16 -> 0.62 s, 8 -> 0.37 s, 4 -> 0.24 s fwd+bwd).
CPU_TILE_SIZE = 4


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
    sh_degree: Optional[int] = None,
    tile_size: Optional[int] = None,
    backgrounds: Optional[Tensor] = None,
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
            means, quats, scales, opacities, features, viewmats, Ks, width, height,
            near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, sh_degree=sh_degree,
            tile_size=tile_size or 16, backgrounds=backgrounds, render_mode=render_mode, packed=False,
        )
    return _rasterize_cpu(means, quats, scales, opacities, features, viewmats, Ks, width, height,
                          near_plane, far_plane, eps2d, sh_degree, tile_size or CPU_TILE_SIZE, backgrounds, render_mode)


def _check_inputs(means, quats, scales, opacities, features, viewmats, Ks, width, height, sh_degree, render_mode) -> None:
    n = means.shape[0]
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means must be [N, 3], got {tuple(means.shape)}")
    if quats.shape != (n, 4) or scales.shape != (n, 3) or opacities.shape != (n,):
        raise ValueError(f"quats [N, 4], scales [N, 3], opacities [N] expected for N={n}, got "
                         f"{tuple(quats.shape)}, {tuple(scales.shape)}, {tuple(opacities.shape)}")
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4) or Ks.shape != (viewmats.shape[0], 3, 3):
        raise ValueError(f"viewmats must be [C, 4, 4] and Ks [C, 3, 3], got {tuple(viewmats.shape)}, {tuple(Ks.shape)}")
    if sh_degree is None and not (features.ndim == 2 and features.shape[0] == n
                                  or features.ndim == 3 and features.shape[:2] == (viewmats.shape[0], n)):
        raise ValueError(f"features must be [N, D] or [C, N, D] without sh_degree, got {tuple(features.shape)}")
    if sh_degree is not None and (features.ndim != 3 or features.shape[0] != n or features.shape[2] != 3
                                  or features.shape[1] < (sh_degree + 1) ** 2):
        raise ValueError(f"SH features must be [N, K>={(sh_degree or 0) + 1}**2, 3], got {tuple(features.shape)}")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def project(means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
            near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """gsplat's pure-torch EWA projection.

    Returns radii [C, N, 2] int32 (0 = culled), means2d [C, N, 2] pixels, depths [C, N] camera z,
    conics [C, N, 3] (upper triangle of the inverse 2-D covariance, eps2d blur included).
    """
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_covar=True, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane)
    return radii, means2d, depths, conics


def view_colors(means: Tensor, features: Tensor, viewmats: Tensor, sh_degree: Optional[int]) -> Tensor:
    """Per-camera features [C, N, D]: SH evaluated towards each camera (gsplat's +0.5, clamp 0) or as given."""
    n_cams = viewmats.shape[0]
    if sh_degree is None:
        return features if features.ndim == 3 else features.expand(n_cams, -1, -1)
    campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3] world
    dirs = means[None, :, :] - campos[:, None, :]  # [C, N, 3]
    shs = features[None].expand(n_cams, -1, -1, -1)
    return torch.clamp_min(_spherical_harmonics(sh_degree, dirs, shs) + 0.5, 0.0)


def _rasterize_cpu(means, quats, scales, opacities, features, viewmats, Ks, width, height,
                   near_plane, far_plane, eps2d, sh_degree, tile_size, backgrounds, render_mode):
    radii, means2d, depths, conics = project(means, quats, scales, viewmats, Ks, width, height,
                                             near_plane, far_plane, eps2d)
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
        image, alpha = composite(means2d[c], conics[c], opacities, colors[c], depths[c], radii[c],
                                 width, height, tile_size)
        if backgrounds is not None:
            image = image + (1.0 - alpha) * backgrounds[c]
        renders.append(image)
        alphas.append(alpha)
    render_colors, render_alphas = torch.stack(renders), torch.stack(alphas)
    if render_mode in ("ED", "RGB+ED"):
        render_colors = torch.cat(
            [render_colors[..., :-1], render_colors[..., -1:] / render_alphas.clamp(min=1e-10)], dim=-1)
    meta = {"radii": radii, "means2d": means2d, "depths": depths, "conics": conics, "width": width,
            "height": height, "n_cameras": n_cams, "gaussian_ids": None, "tile_size": tile_size}
    return render_colors, render_alphas, meta


def composite(means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor, depths: Tensor, radii: Tensor,
              width: int, height: int, tile_size: int = CPU_TILE_SIZE) -> tuple[Tensor, Tensor]:
    """Front-to-back alpha compositing of one camera's projected Gaussians, tile by tile.

    means2d [N, 2] pixels, conics [N, 3], opacities [N], colors [N, D], depths [N], radii [N, 2]
    (Gaussians with a zero radius are skipped). Returns image [H, W, D] and alpha [H, W, 1].

    Gaussians are binned to the square tiles their 3.33-sigma box touches (one sort by depth, one stable
    sort by tile), tiles are processed in groups padded to the group's longest list, and transmittance
    is an exclusive cumulative sum of log(1 - alpha) along each pixel's list.
    """
    n_channels = colors.shape[-1]
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    n_tiles, pix_per_tile = tiles_x * tiles_y, tile_size * tile_size
    gauss_ids, tile_start, tile_count = _bin_tiles(means2d.detach(), depths.detach(), radii, tiles_x, tiles_y, tile_size)

    out_colors = colors.new_zeros(n_tiles, pix_per_tile, n_channels)
    out_alpha = colors.new_zeros(n_tiles, pix_per_tile)
    local = torch.arange(pix_per_tile, device=means2d.device)
    local_xy = torch.stack([local % tile_size, local // tile_size], dim=-1).to(means2d.dtype) + 0.5  # [P, 2]
    group_tiles, group_results = [], []
    for tiles in _tile_groups(tile_count, pix_per_tile):
        max_len = int(tile_count[tiles].max())
        slot = torch.arange(max_len, device=means2d.device)
        valid = slot[None, :] < tile_count[tiles, None]  # [T, L]
        ids = gauss_ids[(tile_start[tiles, None] + slot[None, :]).clamp(max=len(gauss_ids) - 1)]  # [T, L]
        origin = torch.stack([tiles % tiles_x, tiles // tiles_x], dim=-1).to(means2d.dtype) * tile_size  # [T, 2]
        pix = origin[:, None, :] + local_xy[None]  # [T, P, 2]
        mean = means2d[ids]  # [T, L, 2]
        dx = pix[:, :, None, 0] - mean[:, None, :, 0]  # [T, P, L]
        dy = pix[:, :, None, 1] - mean[:, None, :, 1]
        con = conics[ids]  # [T, L, 3]
        sigma = (0.5 * (con[:, None, :, 0] * dx * dx + con[:, None, :, 2] * dy * dy)
                 + con[:, None, :, 1] * dx * dy)
        alpha = torch.clamp_max(opacities[ids][:, None, :] * torch.exp(-sigma), ALPHA_MAX)
        keep = valid[:, None, :] & (sigma >= 0) & (alpha >= ALPHA_MIN)
        alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
        log_trans = torch.cumsum(torch.log1p(-alpha), dim=-1)  # log T after each Gaussian
        trans_before = torch.exp(log_trans - torch.log1p(-alpha))
        weights = alpha * trans_before * (log_trans.detach() > math.log(T_MIN))  # [T, P, L]
        group_tiles.append(tiles)
        group_results.append((torch.einsum("tpl,tlc->tpc", weights, colors[ids]), weights.sum(-1)))
    if group_tiles:
        tiles = torch.cat(group_tiles)
        out_colors = out_colors.index_copy(0, tiles, torch.cat([r[0] for r in group_results]))
        out_alpha = out_alpha.index_copy(0, tiles, torch.cat([r[1] for r in group_results]))
    image = _untile(out_colors, tiles_x, tiles_y, tile_size)[:height, :width]
    alpha_img = _untile(out_alpha[..., None], tiles_x, tiles_y, tile_size)[:height, :width]
    return image, alpha_img


@torch.no_grad()
def _bin_tiles(means2d: Tensor, depths: Tensor, radii: Tensor, tiles_x: int, tiles_y: int, tile_size: int):
    """Depth-ordered Gaussian lists per tile.

    Returns gauss_ids [M] (Gaussian index of each tile-Gaussian pair, grouped by tile, near to far),
    tile_start [n_tiles] and tile_count [n_tiles] (each tile's slice of gauss_ids).
    """
    visible = torch.nonzero((radii > 0).all(dim=-1)).squeeze(1)
    visible = visible[torch.argsort(depths[visible], stable=True)]
    centre, radius = means2d[visible], radii[visible].to(means2d.dtype)
    lo = torch.floor((centre - radius) / tile_size).long()
    hi = torch.floor((centre + radius) / tile_size).long() + 1
    x0, x1 = lo[:, 0].clamp(0, tiles_x), hi[:, 0].clamp(0, tiles_x)
    y0, y1 = lo[:, 1].clamp(0, tiles_y), hi[:, 1].clamp(0, tiles_y)
    span_x = (x1 - x0).clamp(min=0)
    count = span_x * (y1 - y0).clamp(min=0)
    rank = torch.repeat_interleave(torch.arange(len(visible), device=means2d.device), count)
    first = torch.cumsum(count, 0) - count
    k = torch.arange(len(rank), device=means2d.device) - first[rank]
    tile = (y0[rank] + k // span_x[rank]) * tiles_x + x0[rank] + k % span_x[rank]
    tile_sorted, order = torch.sort(tile, stable=True)  # stable: keeps the depth order within a tile
    tile_count = torch.bincount(tile_sorted, minlength=tiles_x * tiles_y)
    tile_start = torch.cumsum(tile_count, 0) - tile_count
    return visible[rank[order]], tile_start, tile_count


def _tile_groups(tile_count: Tensor, pix_per_tile: int) -> list[Tensor]:
    """Non-empty tiles, longest list first, cut into groups of at most GROUP_ELEMENTS padded elements."""
    tiles = torch.nonzero(tile_count).squeeze(1)
    tiles = tiles[torch.argsort(tile_count[tiles], descending=True)]
    counts = tile_count[tiles].tolist()
    groups, start = [], 0
    while start < len(counts):
        # the first tile of a group is its longest; take as many as fit in the budget
        n = max(1, GROUP_ELEMENTS // (pix_per_tile * counts[start]))
        groups.append(tiles[start:start + n])
        start += n
    return groups


def _untile(values: Tensor, tiles_x: int, tiles_y: int, tile_size: int) -> Tensor:
    """[n_tiles, P, D] tile-major pixels -> [tiles_y * tile_size, tiles_x * tile_size, D] image."""
    d = values.shape[-1]
    return (values.reshape(tiles_y, tiles_x, tile_size, tile_size, d)
            .permute(0, 2, 1, 3, 4).reshape(tiles_y * tile_size, tiles_x * tile_size, d))
