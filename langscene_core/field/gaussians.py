"""The Gaussian scene model of the language surface field.

Parameters are held in an ``nn.ParameterDict`` with the key names and activations gsplat's
densification strategies expect, so ``gsplat.strategy.DefaultStrategy`` can grow and prune them:

- ``means``     [N, 3] float32, world frame, metres
- ``quats``     [N, 4] float32, wxyz, unnormalised
- ``scales``    [N, 3] float32, log of the standard deviations (metres)
- ``opacities`` [N]    float32, logits
- ``sh0``       [N, 1, 3] float32, degree-0 SH colour coefficients
- ``shN``       [N, K - 1, 3] float32, higher SH bands (K = (sh_degree + 1) ** 2; K - 1 may be 0)
- ``latents``   [N, L, 3] float32, one 3-d language latent per mask level (L = 3: s, m, l)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import open3d as o3d
import torch
from gsplat.cuda._torch_impl import _quat_to_rotmat
from torch import Tensor, nn

from langscene_core.field.views import TrainView
from langscene_core.geometry.camera import unproject_depth

SH_C0 = 0.28209479177387814  # degree-0 SH basis: colour = SH_C0 * sh0 + 0.5
LEVELS = ("s", "m", "l")
PARAM_KEYS = ("means", "quats", "scales", "opacities", "sh0", "shN", "latents")


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """[..., 3] colour in 0..1 -> degree-0 SH coefficient (gsplat adds 0.5 after SH evaluation)."""
    return (rgb - 0.5) / SH_C0


class Gaussians(nn.Module):
    """3D Gaussians with view-dependent colour and per-level language latents (see module doc)."""

    def __init__(self, params: dict[str, Tensor], sh_degree: int):
        super().__init__()
        missing = [k for k in PARAM_KEYS if k not in params]
        if missing:
            raise ValueError(f"Gaussians need parameters {PARAM_KEYS}; missing {missing}")
        n = params["means"].shape[0]
        if params["shN"].shape[1] != (sh_degree + 1) ** 2 - 1:
            raise ValueError(
                f"shN must have {(sh_degree + 1) ** 2 - 1} bands for sh_degree {sh_degree}, "
                f"got {params['shN'].shape[1]}"
            )
        for key in PARAM_KEYS:
            if params[key].shape[0] != n:
                raise ValueError(f"parameter {key} has {params[key].shape[0]} rows, means has {n}")
        self.sh_degree = sh_degree
        self.params = nn.ParameterDict(
            {k: nn.Parameter(torch.as_tensor(params[k], dtype=torch.float32).clone()) for k in PARAM_KEYS}
        )

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_points(
        cls,
        points: np.ndarray | Tensor,
        colors: np.ndarray | Tensor,
        normals: np.ndarray | Tensor | None = None,
        sh_degree: int = 1,
        levels: int = len(LEVELS),
        opacity: float = 0.5,
        flat_ratio: float = 0.1,
    ) -> Gaussians:
        """Gaussians centred on a point cloud.

        points: [N, 3] world frame; colors: [N, 3] in 0..1; normals: optional [N, 3] world-frame unit
        normals. Each Gaussian's in-plane size is the mean distance to its 3 nearest neighbours
        (open3d KNN); with normals its local z axis is the normal and its z size ``flat_ratio`` times
        smaller (a surfel), without them it is isotropic with a random rotation.
        """
        pts = torch.as_tensor(np.asarray(points), dtype=torch.float32)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 4:
            raise ValueError(f"points must be [N >= 4, 3], got {tuple(pts.shape)}")
        cols = torch.as_tensor(np.asarray(colors), dtype=torch.float32).clamp(0, 1)
        if cols.shape != pts.shape:
            raise ValueError(f"colors must be [N, 3] like points, got {tuple(cols.shape)}")
        n = len(pts)
        size = knn(pts, 3)[1].mean(dim=1).clamp_min(1e-4)
        log_size = torch.log(size)[:, None].repeat(1, 3)
        if normals is not None:
            nrm = torch.nn.functional.normalize(torch.as_tensor(np.asarray(normals), dtype=torch.float32), dim=-1)
            quats = quat_from_z_axis(nrm)
            log_size[:, 2] += float(np.log(flat_ratio))
        else:
            quats = torch.nn.functional.normalize(torch.randn(n, 4), dim=-1)
        params = {
            "means": pts,
            "quats": quats,
            "scales": log_size,
            "opacities": torch.full((n,), float(np.log(opacity / (1 - opacity)))),
            "sh0": rgb_to_sh0(cols)[:, None, :],
            "shN": torch.zeros(n, (sh_degree + 1) ** 2 - 1, 3),
            "latents": torch.zeros(n, levels, 3),
        }
        return cls(params, sh_degree)

    @classmethod
    def from_rgbd(
        cls,
        views: Sequence[TrainView],
        stride: int = 2,
        max_points: int = 50000,
        sh_degree: int = 1,
        levels: int = len(LEVELS),
        seed: int = 0,
    ) -> Gaussians:
        """Gaussians from the depth maps of ``views`` (unprojected every ``stride`` pixels, randomly
        thinned to ``max_points``), coloured by the RGB and oriented by the normal prior where present."""
        points, colors, normals = rgbd_points(views, stride)
        if len(points) > max_points:
            keep = np.random.default_rng(seed).choice(len(points), max_points, replace=False)
            points, colors, normals = points[keep], colors[keep], None if normals is None else normals[keep]
        return cls.from_points(points, colors, normals, sh_degree=sh_degree, levels=levels)

    # ---- activated values ---------------------------------------------------------------------
    def __len__(self) -> int:
        return self.params["means"].shape[0]

    @property
    def means(self) -> Tensor:
        """[N, 3] world frame."""
        return self.params["means"]

    @property
    def quats(self) -> Tensor:
        """[N, 4] unit wxyz."""
        return torch.nn.functional.normalize(self.params["quats"], dim=-1)

    @property
    def scales(self) -> Tensor:
        """[N, 3] standard deviations, metres."""
        return torch.exp(self.params["scales"])

    @property
    def opacities(self) -> Tensor:
        """[N] in 0..1."""
        return torch.sigmoid(self.params["opacities"])

    @property
    def sh(self) -> Tensor:
        """[N, K, 3] SH coefficients."""
        return torch.cat([self.params["sh0"], self.params["shN"]], dim=1)

    @property
    def latents(self) -> Tensor:
        """[N, L, 3] language latents."""
        return self.params["latents"]

    @property
    def levels(self) -> int:
        return self.params["latents"].shape[1]

    def surface_normals(self) -> Tensor:
        """[N, 3] world-frame unit normal of each Gaussian: its shortest axis (sign arbitrary)."""
        rotations = _quat_to_rotmat(self.params["quats"])  # [N, 3, 3], columns = local axes
        shortest = torch.argmin(self.params["scales"], dim=-1)  # [N]
        return torch.gather(rotations, 2, shortest[:, None, None].expand(-1, 3, 1)).squeeze(-1)

    def base_colors(self) -> Tensor:
        """[N, 3] view-independent colour (degree-0 SH) in 0..1, e.g. for point clouds."""
        return (SH_C0 * self.params["sh0"][:, 0] + 0.5).clamp(0, 1)

    def state(self) -> dict[str, Tensor]:
        """Detached CPU copies of the raw parameters (see module doc)."""
        return {k: v.detach().cpu().clone() for k, v in self.params.items()}


def quat_from_z_axis(normals: Tensor) -> Tensor:
    """[N, 3] unit vectors -> [N, 4] wxyz rotations taking the local z axis onto them (sign-free:
    a normal and its negation give the same Gaussian, so n_z < 0 is flipped to avoid the 180 degree pole)."""
    n = torch.where(normals[:, 2:3] < 0, -normals, normals)
    quats = torch.stack([1.0 + n[:, 2], -n[:, 1], n[:, 0], torch.zeros_like(n[:, 0])], dim=-1)
    return torch.nn.functional.normalize(quats, dim=-1)


def knn(points: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Each point's k nearest other points (open3d NearestNeighborSearch).

    points: [N, 3]. Returns indices [N, k] int64 and distances [N, k] float32, nearest first.
    """
    if len(points) <= k:
        raise ValueError(f"k={k} nearest neighbours need more than {k} points, got {len(points)}")
    pts = o3d.core.Tensor(points.detach().cpu().numpy().astype(np.float32))
    nns = o3d.core.nns.NearestNeighborSearch(pts)
    nns.knn_index()
    idx, sq_dist = nns.knn_search(pts, k + 1)  # the first hit is the point itself
    return (
        torch.from_numpy(idx.numpy()[:, 1:].astype(np.int64)).to(points.device),
        torch.from_numpy(sq_dist.numpy()[:, 1:]).sqrt().to(points.device),
    )


def rgbd_points(views: Sequence[TrainView], stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """World points [M, 3], colours [M, 3] and normals [M, 3] (None unless every view with depth has a
    normal prior) of every ``stride``-th pixel with valid depth, over the views that have depth (e.g.
    keyframes; generated frames have none) (langscene_core.geometry.camera.unproject_depth)."""
    views = [v for v in views if v.depth is not None]
    if not views:
        raise ValueError("RGB-D initialisation needs depth in at least one view (or pass init_points)")
    with_normals = all(v.normal is not None for v in views)
    points, colors, normals = [], [], []
    for view in views:
        world = unproject_depth(view.depth, view.intrinsics, view.cam_to_world)[::stride, ::stride]
        valid = np.isfinite(world).all(axis=-1)
        points.append(world[valid])
        colors.append(view.rgb[::stride, ::stride][valid])
        if with_normals:
            normals.append(view.normal[::stride, ::stride][valid])
    if not points or sum(len(p) for p in points) < 4:
        raise ValueError("the views' depth maps hold fewer than 4 valid points")
    return (
        np.concatenate(points).astype(np.float32),
        np.concatenate(colors).astype(np.float32),
        np.concatenate(normals).astype(np.float32) if with_normals else None,
    )
