"""Motion-compensated interpolation between two keyframes: the condition video of TriMap models with the
``flow_correction`` condition (see langscene_core.trimap.pipeline).

Dense optical flow both ways between the keyframes (TV-L1, scikit-image), then every in-between frame at
time t in (0, 1) is the blend (1 - t) I0(x + F_t0(x)) + t I1(x + F_t1(x)) of the two keyframes warped
backwards along the flows to time t, approximated from the keyframe flows F01, F10 as in Super SloMo
(Jiang et al., CVPR 2018): F_t0 = -(1 - t) t F01 + t^2 F10, F_t1 = (1 - t)^2 F01 - t (1 - t) F10.
Flows are in pixels, (dy, dx) per pixel, computed on the frames' luminance (any 3-channel coding: RGB,
normal colours, palette colours).

TV-L1 runs with a data attachment of 100 (scikit-image's default: 15) and more warps and iterations:
at 64x64 the default regularises the motion of objects that move more than their size away. On 39
held-out 9-frame clips (15-60 deg arcs) SfM registered the interpolated frames of 46 % of the clips with
the defaults and 77 % with these settings (true rendered frames: 79 %); RGB PSNR +0.5 dB. About 3x the
default's time (0.13 s per flow at 64x64 on one core).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import rgb2gray
from skimage.registration import optical_flow_tvl1

TVL1_SETTINGS = {"attachment": 100.0, "num_warp": 10, "num_iter": 15}


def keyframe_flow(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Flow [2, H, W] float32 (dy, dx) with reference(x) ~ moving(x + flow(x)).

    reference, moving: [3, H, W] float arrays (any common range).
    """
    gray = [rgb2gray(np.asarray(image, np.float64), channel_axis=0) for image in (reference, moving)]
    return optical_flow_tvl1(gray[0], gray[1], **TVL1_SETTINGS).astype(np.float32)


def _warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: out(x) = images(x + flow(x)), bilinear, borders repeated.
    images: [N, C, H, W]; flow: [N, 2, H, W] (dy, dx) pixels."""
    height, width = images.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=flow.dtype), torch.arange(width, dtype=flow.dtype), indexing="ij"
    )
    x = (xs + flow[:, 1]) * (2.0 / max(width - 1, 1)) - 1.0  # grid_sample's [-1, 1] with align_corners=True
    y = (ys + flow[:, 0]) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack([x, y], dim=-1).to(images.dtype)
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


def flow_interpolation(first: torch.Tensor, last: torch.Tensor, num_frames: int) -> torch.Tensor:
    """In-between frames [B, C, T, H, W] from ``first`` to ``last`` ([B, C, H, W], C = 3); frame 0 is
    ``first`` and frame T - 1 is ``last`` exactly."""
    if first.shape != last.shape or first.dim() != 4 or first.shape[1] != 3:
        raise ValueError(f"first/last must both be [B, 3, H, W], got {tuple(first.shape)} and {tuple(last.shape)}")
    if num_frames < 2:
        raise ValueError(f"num_frames={num_frames}: need at least 2")
    a, b = first.detach().float().cpu(), last.detach().float().cpu()
    f01 = torch.from_numpy(np.stack([keyframe_flow(x.numpy(), y.numpy()) for x, y in zip(a, b)]))
    f10 = torch.from_numpy(np.stack([keyframe_flow(y.numpy(), x.numpy()) for x, y in zip(a, b)]))
    frames = [a]
    for k in range(1, num_frames - 1):
        t = k / (num_frames - 1)
        to_first = -(1 - t) * t * f01 + t * t * f10
        to_last = (1 - t) ** 2 * f01 - t * (1 - t) * f10
        frames.append((1 - t) * _warp(a, to_first) + t * _warp(b, to_last))
    frames.append(b)
    return torch.stack(frames, dim=2).to(first.device, first.dtype)
