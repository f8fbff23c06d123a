"""Palette colouring of mask-id maps for the TriMap semantic pass, and decoding by nearest colour.

Mask ids are integers >= 0 with 0 = background (black). Ids 1..N-1 get well separated colours (a fixed
golden-ratio hue walk over a few saturation/value rings) so a generated, slightly blurred colour still
decodes to the right id by nearest palette entry.
"""
from __future__ import annotations

import colorsys

import numpy as np
import torch


def make_palette(size: int = 256) -> np.ndarray:
    """[size, 3] float32 colours in [0, 1]; entry 0 is black (background), all entries distinct."""
    if size < 1:
        raise ValueError(f"palette size must be >= 1, got {size}")
    rings = [(1.0, 1.0), (0.55, 0.95), (1.0, 0.6), (0.35, 0.75), (0.8, 0.4)]  # (saturation, value)
    colours = [(0.0, 0.0, 0.0)]
    for i in range(1, size):
        saturation, value = rings[(i - 1) % len(rings)]
        hue = ((i - 1) * 0.618033988749895) % 1.0
        colours.append(colorsys.hsv_to_rgb(hue, saturation, value))
    return np.asarray(colours, dtype=np.float32)


def masks_to_rgb(ids: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Mask ids [...] int (0 = background) -> colours [..., 3] float32 in [0, 1]."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= len(palette)):
        raise ValueError(f"mask ids span [{ids.min()}, {ids.max()}] but the palette has {len(palette)} entries")
    return palette[ids]


def rgb_to_masks(rgb: np.ndarray, palette: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Colours [..., 3] in [0, 1] -> mask ids [...] int64 of the nearest palette entry (Euclidean RGB)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.shape[-1] != 3:
        raise ValueError(f"expected colours [..., 3], got shape {rgb.shape}")
    flat = torch.from_numpy(rgb.reshape(-1, 3))
    table = torch.from_numpy(np.asarray(palette, dtype=np.float32))
    ids = torch.cat([torch.cdist(part, table).argmin(dim=1) for part in flat.split(chunk)]) if len(flat) else \
        torch.zeros(0, dtype=torch.int64)
    return ids.numpy().reshape(rgb.shape[:-1])
