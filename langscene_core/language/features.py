"""Per-mask language features (DESIGN.md 2.4): one CLIP image embedding per mask per level.

Each mask is cut out of the frame on a black background, cropped to its bounding box, padded to a
square (so the encoder sees the region undistorted) and encoded. The result is kept compact as an id
map plus a table (:class:`MaskFeatures`); :meth:`MaskFeatures.feature_maps` paints dense maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch
import torchvision.transforms.v2.functional as TF

from langscene_core.language.clip import ClipModel, encode_images
from langscene_core.language.masks import as_float_rgb


@dataclass(frozen=True)
class MaskFeatures:
    """Language features of one frame.

    ids: [L, H, W] int64, row of ``table`` for each pixel and level; -1 where no mask covers it.
    table: [M, D] float32 unit vectors, one per mask of every level (rows of level l follow level l-1).
    """

    ids: torch.Tensor
    table: torch.Tensor

    def feature_maps(self) -> torch.Tensor:
        """[L, H, W, D] float32: the mask's unit feature at every covered pixel, zeros elsewhere."""
        maps = self.table[self.ids.clamp(min=0)]
        return maps * (self.ids >= 0).unsqueeze(-1).to(maps.dtype)


def _square_crop(rgb: torch.Tensor, inside: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """rgb: [3, h, w] float 0..1 bounding-box crop; inside: [h, w] bool mask. Returns [3, *size]:
    the masked crop (black outside the mask) centred on a black square, resized to ``size``."""
    _, h, w = rgb.shape
    side = max(h, w)
    square = torch.zeros(3, side, side, dtype=rgb.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    square[:, top : top + h, left : left + w] = rgb * inside
    return TF.resize(square, list(size), interpolation=TF.InterpolationMode.BICUBIC, antialias=True)


def mask_crops(image: np.ndarray, labels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Encoder inputs of every mask of one level.

    image: [H, W, 3] uint8 or float 0..1 RGB. labels: [H, W] int mask ids (0..M-1, -1 none).
    Returns [M, 3, *size] float32 in 0..1 (M = labels.max() + 1; an id with no pixel gives a black crop).
    """
    rgb = torch.from_numpy(as_float_rgb(image)).float().permute(2, 0, 1)
    boxes = scipy.ndimage.find_objects(labels.astype(np.int64) + 1)  # label k+1 holds mask k
    crops = torch.zeros(len(boxes), 3, *size)
    for k, box in enumerate(boxes):
        if box is not None:
            inside = torch.from_numpy(labels[box] == k)
            crops[k] = _square_crop(rgb[:, box[0], box[1]], inside, size)
    return crops


def mask_features(clip: ClipModel, image: np.ndarray, masks: np.ndarray, batch_size: int = 32) -> MaskFeatures:
    """One CLIP feature per mask per level.

    image: [H, W, 3] uint8 or float 0..1 RGB. masks: [L, H, W] int mask ids (-1 none), e.g. a mask
    mapper's output. Returns :class:`MaskFeatures` on the CPU.
    """
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks must be [L, H, W] matching the image {image.shape[:2]}, got {masks.shape}")
    if masks.min() < -1:
        raise ValueError(f"mask ids must be >= -1, got {masks.min()}")
    ids, crops, offset = [], [], 0
    for labels in masks:
        crops.append(mask_crops(image, labels, clip.image_size))
        level_ids = torch.from_numpy(labels.astype(np.int64))
        ids.append(torch.where(level_ids >= 0, level_ids + offset, level_ids))
        offset += crops[-1].shape[0]
    # a region often repeats across levels (an object that is whole at s, m and l): encode it once
    unique, inverse = torch.unique(torch.cat(crops).flatten(1), dim=0, return_inverse=True)
    table = encode_images(clip, unique.view(-1, 3, *clip.image_size), batch_size).cpu()[inverse]
    return MaskFeatures(torch.stack(ids), table)
