"""CPU alpha compositing of projected 2-D Gaussians: tile binning plus a hand-written backward.

gsplat 1.5 has no CPU rasteriser (see ``rasterize``), so this module composites on the CPU with
gsplat's rules: alpha = min(0.999, opacity * exp(-sigma)); a Gaussian with sigma < 0 or alpha < 1/255
is skipped; a pixel stops at the Gaussian whose transmittance would fall to 1e-4 or below.

Layout: Gaussians are binned to small square tiles (one depth sort, one stable tile sort); tiles are
processed in groups as dense [tiles T, pixels P, Gaussians L] blocks padded to the group's longest
list. The backward is analytic (``_Composite``): torch autograd over that block would keep ~10
[T, P, L] tensors and scatter every gather back element by element; here the per-Gaussian gradients
are reductions over the P pixels of a tile followed by ONE scatter of the [T, L] sums, and the colour
gradient is a batched matmul. Profiling at 10k Gaussians, 160x120, showed gathers, scatters and
``nonzero`` cost far more on 2 cores than elementwise maths, hence this dense-block design.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

ALPHA_MAX = 0.999  # gsplat's clamp of a single Gaussian's alpha (1.5.3; Inria 3DGS used 0.99)
ALPHA_MIN = 1.0 / 255.0  # gsplat skips Gaussians below this alpha
T_MIN = 1e-4  # gsplat stops a pixel when transmittance would drop to this
# Padded elements [T, P, L] of one group; small enough that a group's blocks stay in cache-sized
# pieces, large enough that the per-group Python overhead is negligible.
GROUP_ELEMENTS = 1 << 17
# Small tiles waste less work on pixels outside a Gaussian's footprint.
CPU_TILE_SIZE = 4


@dataclass(frozen=True)
class TileBins:
    """Depth-ordered Gaussian lists of the tiles of one camera.

    gauss_ids [M] int64: Gaussian index of each (tile, Gaussian) pair, grouped by tile, near to far.
    tile_start, tile_count [tiles_x * tiles_y] int64: each tile's slice of gauss_ids.
    """

    gauss_ids: Tensor
    tile_start: Tensor
    tile_count: Tensor
    tiles_x: int
    tiles_y: int
    tile_size: int


def composite(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    tile_size: int = CPU_TILE_SIZE,
) -> tuple[Tensor, Tensor]:
    """Front-to-back alpha compositing of one camera's projected Gaussians; differentiable.

    means2d [N, 2] pixels (centres at integer + 0.5), conics [N, 3] (upper triangle of the inverse 2-D
    covariance), opacities [N] 0..1, colors [N, D] any D, depths [N] camera z (compositing order),
    radii [N, 2] (Gaussians with a zero radius are skipped). Returns image [H, W, D], alpha [H, W, 1].
    The result does not depend on tile_size (binning is conservative); only the speed does.
    """
    bins = bin_tiles(
        means2d.detach(), conics.detach(), opacities.detach(), depths.detach(), radii, width, height, tile_size
    )
    tile_colors, tile_alpha = _Composite.apply(means2d, conics, opacities, colors, bins)
    image = _untile(tile_colors, bins)[:height, :width]
    alpha = _untile(tile_alpha[..., None], bins)[:height, :width]
    return image, alpha


@torch.no_grad()
def bin_tiles(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    tile_size: int,
) -> TileBins:
    """Bin each drawn Gaussian to the tiles where its alpha can reach 1/255.

    alpha >= 1/255 needs sigma <= log(255 opacity): an ellipse (gsplat's 3.33-sigma radius is its
    bounding box for opacity 1; fainter Gaussians have smaller ones). Candidates are the tiles of the
    ellipse's bounding box; a candidate is kept when the ellipse reaches one of its pixel centres'
    rectangle (``_reaches``). Bounds carry a small margin, so binning is conservative under rounding.
    """
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    bound = 2.0 * torch.log(255.0 * opacities.clamp_min(1e-30)) * (1 + 1e-4) + 1e-4  # [N] max dx^T conic dx
    det = conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2
    cov_diag = conics[:, [2, 0]] / det.clamp_min(1e-30)[:, None]  # [N, 2] cov_xx, cov_yy
    extent = torch.sqrt(bound.clamp_min(0.0)[:, None] * cov_diag) + 1e-3
    drawn = (radii > 0).all(dim=-1) & (bound > 0) & (det > 0)
    visible = torch.nonzero(drawn).squeeze(1)
    visible = visible[torch.argsort(depths[visible], stable=True)]
    centre, radius = means2d[visible], extent[visible]
    lo = torch.floor((centre - radius) / tile_size).long()
    hi = torch.floor((centre + radius) / tile_size).long() + 1
    x0, x1 = lo[:, 0].clamp(0, tiles_x), hi[:, 0].clamp(0, tiles_x)
    y0, y1 = lo[:, 1].clamp(0, tiles_y), hi[:, 1].clamp(0, tiles_y)
    span_x = (x1 - x0).clamp(min=0)
    count = span_x * (y1 - y0).clamp(min=0)
    rank = torch.repeat_interleave(torch.arange(len(visible), device=means2d.device), count)
    first = torch.cumsum(count, 0) - count
    k = torch.arange(len(rank), device=means2d.device) - first[rank]
    tile_x, tile_y = x0[rank] + k % span_x[rank], y0[rank] + k // span_x[rank]
    reach = _reaches(
        centre[rank], conics[visible[rank]], bound[visible[rank]], tile_x, tile_y, tile_size, width, height
    )
    rank, tile = rank[reach], (tile_y * tiles_x + tile_x)[reach]
    tile_sorted, order = torch.sort(tile, stable=True)  # stable: keeps the depth order within a tile
    tile_count = torch.bincount(tile_sorted, minlength=tiles_x * tiles_y)
    tile_start = torch.cumsum(tile_count, 0) - tile_count
    return TileBins(visible[rank[order]], tile_start, tile_count, tiles_x, tiles_y, tile_size)


def _reaches(
    mean: Tensor, conic: Tensor, bound: Tensor, tile_x: Tensor, tile_y: Tensor, tile_size: int, width: int, height: int
) -> Tensor:
    """[K] bool: does {d : a dx^2 + 2 b dx dy + c dy^2 <= bound} around mean [K, 2] meet the rectangle
    of the pixel centres of tile (tile_x, tile_y) [K]? The quadratic's minimum over the rectangle is 0
    when the mean is inside, else the least of its minima along the four edges."""
    a, b, c = conic.unbind(-1)
    xl = (tile_x * tile_size).to(mean.dtype) + 0.5 - mean[:, 0]  # rectangle in offsets from the mean
    yl = (tile_y * tile_size).to(mean.dtype) + 0.5 - mean[:, 1]
    xh = ((tile_x + 1) * tile_size).clamp(max=width).to(mean.dtype) - 0.5 - mean[:, 0]
    yh = ((tile_y + 1) * tile_size).clamp(max=height).to(mean.dtype) - 0.5 - mean[:, 1]
    inside = (xl <= 0) & (xh >= 0) & (yl <= 0) & (yh >= 0)
    best = torch.full_like(a, math.inf)
    for x in (xl, xh):  # vertical edges: minimise over dy
        dy = torch.minimum(torch.maximum(-b * x / c, yl), yh)
        best = torch.minimum(best, a * x * x + 2.0 * b * x * dy + c * dy * dy)
    for y in (yl, yh):  # horizontal edges: minimise over dx
        dx = torch.minimum(torch.maximum(-b * y / a, xl), xh)
        best = torch.minimum(best, a * dx * dx + 2.0 * b * dx * y + c * y * y)
    return inside | (best <= bound * (1 + 1e-4) + 1e-4)


def _tile_groups(tile_count: Tensor, pix_per_tile: int) -> list[Tensor]:
    """Non-empty tiles, longest list first, cut into groups of at most GROUP_ELEMENTS padded elements."""
    tiles = torch.nonzero(tile_count).squeeze(1)
    tiles = tiles[torch.argsort(tile_count[tiles], descending=True)]
    counts = tile_count[tiles].tolist()
    groups, start = [], 0
    while start < len(counts):
        # the first tile of a group is its longest; take as many as fit in the budget
        n = max(1, GROUP_ELEMENTS // (pix_per_tile * counts[start]))
        groups.append(tiles[start : start + n])
        start += n
    return groups


class _Composite(torch.autograd.Function):
    """(means2d [N, 2], conics [N, 3], opacities [N], colors [N, D], bins) -> tile colours
    [n_tiles, P, D] and tile alpha [n_tiles, P] (P = tile_size^2 pixels, row-major in the tile).

    Per pixel, with the Gaussians near to far: w_i = alpha_i T_i, T_i = prod_{j<i} (1 - alpha_j),
    C = sum_i w_i c_i, A = sum_i w_i. With g = dL/dC and g_A = dL/dA, d_i = c_i . g + g_A:
    dL/dc_i = w_i g and dL/dalpha_i = T_i d_i - (sum_{j>i} w_j d_j) / (1 - alpha_i) for the composited
    Gaussians (zero for skipped ones and past the stop), then through alpha = opacity exp(-sigma)
    (zero where clamped at ALPHA_MAX) and sigma = 0.5 (a dx^2 + c dy^2) + b dx dy. The sums over a tile's
    pixels of dL/dsigma times 1, dx, dy, dx^2, dx dy, dy^2 come from one matmul with the pixel
    moments [1, x, y, x^2, x y, y^2] (tile-local x, y), expanded around each Gaussian's mean.
    """

    @staticmethod
    def forward(ctx, means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor, bins: TileBins):
        n_tiles, pix_per_tile = bins.tiles_x * bins.tiles_y, bins.tile_size**2
        out_colors = colors.new_zeros(n_tiles, pix_per_tile, colors.shape[-1])
        out_alpha = colors.new_zeros(n_tiles, pix_per_tile)
        saved = []
        for tiles, ids, gauss, origin, blend in _blend_groups(means2d, conics, opacities, bins):
            group_colors = colors.index_select(0, ids.reshape(-1)).reshape(*ids.shape, -1)  # [T, L, D]
            out_colors[tiles] = torch.bmm(blend.weights, group_colors)
            out_alpha[tiles] = blend.weights.sum(-1)
            saved.append((tiles, ids, gauss, origin, group_colors, blend))
        ctx.groups = saved
        ctx.shapes = (means2d.shape[0], colors.shape[-1], bins.tile_size)
        return out_colors, out_alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_colors: Tensor, grad_alpha: Tensor):
        n, n_channels, tile_size = ctx.shapes
        grad_table = grad_colors.new_zeros(6, n)
        grad_feats = grad_colors.new_zeros(n, n_channels)
        moments_basis = _pixel_moments(tile_size, grad_colors.dtype)  # [6, P]
        for tiles, ids, gauss, origin, group_colors, blend in ctx.groups:
            keep, trans, weights, gated_falloff = blend.keep, blend.trans, blend.weights, blend.gated_falloff
            g = grad_colors[tiles]  # [T, P, D]
            flat_ids = ids.reshape(-1)
            grad_feats.index_add_(0, flat_ids, torch.bmm(weights.transpose(1, 2), g).reshape(len(flat_ids), -1))
            dot = torch.bmm(g, group_colors.transpose(1, 2))
            dot += grad_alpha[tiles][:, :, None]  # d_i [T, P, L]
            later = weights * dot
            later = later.sum(-1, keepdim=True) - torch.cumsum(later, dim=-1)  # sum_{j>i} w_j d_j
            grad_raw = trans * dot - later / keep  # dL/dalpha_i
            grad_raw *= gated_falloff  # per pixel: dL/dopacity; dL/dsigma = -opacity * this
            m = torch.matmul(moments_basis, grad_raw)  # [T, 6, L]: sums over pixels of grad_raw * moment
            grad_opacity = m[:, 0]
            s0, sx, sy, sxx, sxy, syy = (-gauss[5] * m[:, k] for k in range(6))  # moments of dL/dsigma
            mx, my = gauss[0] - origin[:, 0, None], gauss[1] - origin[:, 1, None]  # tile-local means [T, L]
            sum_dx, sum_dy = sx - mx * s0, sy - my * s0  # sum over pixels of dL/dsigma * dx, * dy
            a, b, c = gauss[2], gauss[3], gauss[4]
            grads = torch.stack(
                [
                    -(a * sum_dx + b * sum_dy),  # means2d x
                    -(b * sum_dx + c * sum_dy),  # means2d y
                    0.5 * (sxx - 2.0 * mx * sx + mx * mx * s0),  # conic a: 0.5 sum dL/dsigma dx^2
                    sxy - mx * sy - my * sx + mx * my * s0,  # conic b: sum dL/dsigma dx dy
                    0.5 * (syy - 2.0 * my * sy + my * my * s0),  # conic c
                    grad_opacity,
                ]
            )  # [6, T, L]; padding slots have zero gradient (gated_falloff is 0 there)
            grad_table.index_add_(1, flat_ids, grads.reshape(6, -1))
        del ctx.groups
        return grad_table[:2].T, grad_table[2:5].T, grad_table[5], grad_feats, None


@dataclass(frozen=True)
class _Blend:
    """Compositing of one group of tiles, each [T, P, L]: weights w_i = alpha_i T_i (0 where a Gaussian
    is not composited), keep = 1 - alpha_i, trans = T_i (0 where not composited) and gated_falloff =
    exp(-sigma) where alpha follows opacity and sigma (composited, not clamped), else 0."""

    weights: Tensor
    keep: Tensor
    trans: Tensor
    gated_falloff: Tensor


def _blend_groups(means2d: Tensor, conics: Tensor, opacities: Tensor, bins: TileBins):
    """Yield (tiles [T], ids [T, L], gauss [6, T, L] (x, y, a, b, c, opacity; padding has opacity 0),
    tile origins [T, 2], _Blend) for each group of tiles, with gsplat's compositing rules."""
    # one table per Gaussian: x, y, a, b, c, opacity -> one gather per group
    table = torch.cat([means2d, conics, opacities[:, None]], dim=1).T.contiguous()  # [6, N]
    for tiles in _tile_groups(bins.tile_count, bins.tile_size**2):
        ids, valid = _group_ids(bins, tiles)
        gauss = table.index_select(1, ids.reshape(-1)).reshape(6, *ids.shape)  # [6, T, L]
        gauss[5] *= valid  # padding slots get opacity 0: alpha < 1/255, never composited
        origin = _tile_origins(bins, tiles).to(gauss.dtype)  # [T, 2]
        pixels = origin[:, None, :] + _local_pixels(bins.tile_size, gauss.dtype)[None]  # [T, P, 2]
        dx = pixels[:, :, 0, None] - gauss[0, :, None, :]  # [T, P, L]
        dy = pixels[:, :, 1, None] - gauss[1, :, None, :]
        a, b, c, opacity = (gauss[k, :, None, :] for k in (2, 3, 4, 5))
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy  # gsplat's expression, term by term
        falloff = torch.exp(-sigma)
        raw = opacity * falloff
        alpha = torch.clamp_max(raw, ALPHA_MAX)
        used = (sigma >= 0) & (alpha >= ALPHA_MIN)
        alpha *= used
        keep = 1.0 - alpha
        trans_after = torch.cumprod(keep, dim=-1)
        used &= trans_after > T_MIN  # gsplat's early stop: this and all later ones dropped
        trans = torch.ones_like(trans_after)  # T before each Gaussian, 0 where not composited
        trans[..., 1:] = trans_after[..., :-1]
        trans *= used
        falloff *= used & (raw <= ALPHA_MAX)
        yield tiles, ids, gauss, origin, _Blend(alpha * trans, keep, trans, falloff)


@dataclass(frozen=True)
class CompositingMatrix:
    """One camera's compositing for fixed geometry as a linear map from per-Gaussian features to pixels.

    matrix: sparse CSR [H * W, N] float32 (pixel row y * W + x, int32 indices); transposed: the same
    map as CSR [N, H * W] for the backward. ``apply(features)`` equals ``composite``'s image for any
    features [N, D] whenever means, conics and opacities are the ones it was built from.
    """

    matrix: Tensor
    transposed: Tensor

    def apply(self, features: Tensor) -> Tensor:
        """features [N, D] -> [H * W, D], differentiable w.r.t. features."""
        return _SparseProduct.apply(features, self)

    @property
    def nbytes(self) -> int:
        """Memory held by both CSR matrices."""
        return sum(
            t.numel() * t.element_size()
            for m in (self.matrix, self.transposed)
            for t in (m.crow_indices(), m.col_indices(), m.values())
        )


class _SparseProduct(torch.autograd.Function):
    """features [N, D] -> matrix @ features; backward transposed @ grad (both sparse CSR products)."""

    @staticmethod
    def forward(ctx, features: Tensor, op: CompositingMatrix) -> Tensor:
        ctx.op = op
        return torch.sparse.mm(op.matrix, features.contiguous())

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        return torch.sparse.mm(ctx.op.transposed, grad.contiguous()), None


@torch.no_grad()
def compositing_matrix(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    tile_size: int = CPU_TILE_SIZE,
) -> CompositingMatrix:
    """``composite``'s weights for fixed geometry (same inputs, no colours) as a CompositingMatrix:
    for frozen geometry (stage B of training) it replaces projection, binning and compositing."""
    bins = bin_tiles(means2d, conics, opacities, depths, radii, width, height, tile_size)
    rows, cols, values = (
        [means2d.new_zeros(0, dtype=torch.long)],
        [means2d.new_zeros(0, dtype=torch.long)],
        [means2d.new_zeros(0)],
    )
    for _, ids, _, origin, blend in _blend_groups(means2d, conics, opacities, bins):
        t, p, s = torch.nonzero(blend.weights, as_tuple=True)
        x = origin[t, 0].long() + p % tile_size
        y = origin[t, 1].long() + torch.div(p, tile_size, rounding_mode="floor")
        inside = (x < width) & (y < height)
        rows.append((y * width + x)[inside])
        cols.append(ids[t, s][inside])
        values.append(blend.weights[t, p, s][inside])
    rows, cols, values = torch.cat(rows), torch.cat(cols), torch.cat(values)
    n_pix, n = width * height, means2d.shape[0]
    return CompositingMatrix(_csr(rows, cols, values, n_pix, n), _csr(cols, rows, values, n, n_pix))


def _csr(rows: Tensor, cols: Tensor, values: Tensor, n_rows: int, n_cols: int) -> Tensor:
    """Sparse CSR [n_rows, n_cols] with int32 indices from distinct (row, col) entries [K] each."""
    order = torch.argsort(rows * n_cols + cols)
    crow = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n_rows), 0)
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every first use; we rely on mm only
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            crow.int(), cols[order].int(), values[order], (n_rows, n_cols), check_invariants=False
        )


def _group_ids(bins: TileBins, tiles: Tensor) -> tuple[Tensor, Tensor]:
    """ids [T, L] (Gaussian per tile slot, padding repeats a valid index) and valid [T, L] bool."""
    counts = bins.tile_count[tiles]
    slot = torch.arange(int(counts.max()), device=tiles.device)
    valid = slot[None, :] < counts[:, None]
    ids = bins.gauss_ids[(bins.tile_start[tiles, None] + slot[None, :]).clamp(max=len(bins.gauss_ids) - 1)]
    return ids, valid


def _tile_origins(bins: TileBins, tiles: Tensor) -> Tensor:
    """[T, 2] int64 pixel x, y of each tile's top-left corner."""
    return (
        torch.stack([tiles % bins.tiles_x, torch.div(tiles, bins.tiles_x, rounding_mode="floor")], -1) * bins.tile_size
    )


def _local_pixels(tile_size: int, dtype: torch.dtype) -> Tensor:
    """[P, 2] pixel centres (x, y) inside a tile, row-major."""
    local = torch.arange(tile_size * tile_size)
    return torch.stack([local % tile_size, local // tile_size], dim=-1).to(dtype) + 0.5


def _pixel_moments(tile_size: int, dtype: torch.dtype) -> Tensor:
    """[6, P] 1, x, y, x^2, x y, y^2 of the tile-local pixel centres."""
    x, y = _local_pixels(tile_size, dtype).unbind(-1)
    return torch.stack([torch.ones_like(x), x, y, x * x, x * y, y * y])


def _untile(values: Tensor, bins: TileBins) -> Tensor:
    """[n_tiles, P, D] tile-major pixels -> [tiles_y * tile_size, tiles_x * tile_size, D] image."""
    size, d = bins.tile_size, values.shape[-1]
    return (
        values.reshape(bins.tiles_y, bins.tiles_x, size, size, d)
        .permute(0, 2, 1, 3, 4)
        .reshape(bins.tiles_y * size, bins.tiles_x * size, d)
    )
