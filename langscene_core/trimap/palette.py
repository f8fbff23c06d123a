"""Palette colouring of mask-id maps for the TriMap semantic pass, and decoding by nearest colour.

Mask ids are integers >= 0 with 0 = background (black). The palette is an 8-level RGB grid ordered by
farthest-point sampling from black, so every prefix (the ids a scene uses) is as spread out as the grid
allows and a generated, slightly blurred colour still decodes to the right id by nearest entry.
"""

from __future__ import annotations

import numpy as np
import torch

GRID_LEVELS = 8
MAX_PALETTE = GRID_LEVELS**3


def make_palette(size: int = 256) -> np.ndarray:
    """[size, 3] float32 colours in [0, 1]; entry 0 is black (background), all entries distinct, and
    ``make_palette(n)`` is the first n entries of ``make_palette(m)`` for m >= n."""
    if not 1 <= size <= MAX_PALETTE:
        raise ValueError(f"palette size must be in [1, {MAX_PALETTE}], got {size}")
    levels = np.linspace(0.0, 1.0, GRID_LEVELS)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    order = [0]  # black
    distance = np.linalg.norm(grid - grid[0], axis=1)
    for _ in range(size - 1):
        pick = int(np.argmax(distance))  # first of the farthest: deterministic
        order.append(pick)
        distance = np.minimum(distance, np.linalg.norm(grid - grid[pick], axis=1))
    return grid[order].astype(np.float32)


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
    ids = (
        torch.cat([torch.cdist(part, table).argmin(dim=1) for part in flat.split(chunk)])
        if len(flat)
        else torch.zeros(0, dtype=torch.int64)
    )
    return ids.numpy().reshape(rgb.shape[:-1])
