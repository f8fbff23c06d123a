"""Losses of the language surface field (paper section 3.4). Pure functions of tensors.

Shapes: images [H, W, C]; masks [H, W] bool or int ids; latents per Gaussian [N, 3].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def rgb_loss(rendered: Tensor, target: Tensor, l2_weight: float = 0.5) -> Tensor:
    """(1 - l2_weight) * L1 + l2_weight * L2 between [H, W, 3] images (no SSIM: too slow on 2 cores
    for its benefit at 160x120)."""
    diff = rendered - target
    return (1.0 - l2_weight) * diff.abs().mean() + l2_weight * (diff * diff).mean()


def depth_loss(rendered: Tensor, target: Tensor) -> Tensor:
    """L1 between expected depth [H, W] and measured depth [H, W] where the measurement is valid (> 0, finite)."""
    valid = torch.isfinite(target) & (target > 0)
    if not valid.any():
        return rendered.sum() * 0.0
    return (rendered[valid] - target[valid]).abs().mean()


def flatten_loss(log_scales: Tensor) -> Tensor:
    """Mean smallest scale of the Gaussians ([N, 3] log scales): pushes them to flat surfels whose
    shortest axis is a well-defined normal."""
    return torch.exp(log_scales).min(dim=-1).values.mean()


def normal_angle(rendered: Tensor, prior: Tensor) -> Tensor:
    """Eq. 8: [H, W] angle in radians between rendered and prior normals ([H, W, 3], any length)."""
    cos = F.cosine_similarity(rendered, prior, dim=-1, eps=1e-8)
    return torch.arccos(cos.clamp(-1.0, 1.0))


def normal_loss(
    rendered: Tensor, prior: Tensor, step: int, warmup_steps: int, tau_thr_deg: float, valid: Tensor | None = None
) -> Tensor:
    """Progressive normal loss, Eq. 7.

    rendered: [H, W, 3] rendered normal N_p (world frame); prior: [H, W, 3] generated normal N.
    Before ``warmup_steps`` (T_n) it is the L1 on every valid pixel; afterwards only on pixels whose
    angle theta_n (Eq. 8) is at most ``tau_thr_deg``, i.e. uncertain prior regions are dropped.
    valid: optional [H, W] bool (e.g. prior present and rendered alpha > 0).
    """
    mask = prior.abs().sum(-1) > 0
    if valid is not None:
        mask = mask & valid
    if step >= warmup_steps:
        mask = mask & (normal_angle(rendered.detach(), prior) <= math.radians(tau_thr_deg))
    if not mask.any():
        return rendered.sum() * 0.0
    return (rendered[mask] - prior[mask]).abs().sum(-1).mean()


def latent_loss(rendered: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Squared L2 between rendered and target latent maps [..., H, W, 3] (mean over valid pixels [..., H, W])."""
    sq = ((rendered - target) ** 2).sum(-1)
    if valid is None:
        return sq.mean()
    if not valid.any():
        return rendered.sum() * 0.0
    return sq[valid].mean()


def s2d_loss(rendered: Tensor, mask_ids: Tensor) -> Tensor:
    """L_s2d (Eq. 9): rendered latents [H, W, C] of pixels sharing a mask id ([H, W] int, -1 = none)
    pulled together: mean squared distance of each pixel to its mask's mean latent (half the mean
    pairwise squared distance inside a mask)."""
    ids = mask_ids.reshape(-1)
    feats = rendered.reshape(-1, rendered.shape[-1])
    keep = ids >= 0
    if not keep.any():
        return rendered.sum() * 0.0
    ids, feats = ids[keep], feats[keep]
    _, ids = torch.unique(ids, return_inverse=True)
    n_masks = int(ids.max()) + 1
    counts = torch.bincount(ids, minlength=n_masks).to(feats.dtype)
    means = torch.zeros(n_masks, feats.shape[-1], dtype=feats.dtype, device=feats.device).index_add(0, ids, feats)
    means = means / counts[:, None]
    return ((feats - means[ids]) ** 2).sum(-1).mean()


def s3d_loss(latents: Tensor, neighbours: Tensor) -> Tensor:
    """L_s3d (Eq. 9): KL(f_i || f_j) summed over each Gaussian's k nearest neighbours j, averaged over
    Gaussians (and levels). latents: [N, C] or [N, L, C] (each level on its own); neighbours: [N, k]
    int64. The latents are turned into distributions with a softmax over C (the reference
    implementation's choice), so the loss is >= 0 and 0 exactly when neighbours' latents agree up to a
    constant offset."""
    log_p = F.log_softmax(latents, dim=-1)  # [N, ..., C]
    log_q = log_p.index_select(0, neighbours.reshape(-1)).reshape(*neighbours.shape, *log_p.shape[1:])
    kl = (log_p.exp()[:, None] * (log_p[:, None] - log_q)).sum(-1)  # [N, k, ...]
    return kl.sum(1).mean()
