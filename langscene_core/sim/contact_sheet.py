"""A contact sheet image for people: one row per frame, columns RGB | depth | normals | instance ids."""

from __future__ import annotations

import numpy as np

from langscene_core.sim.render import RenderedFrame

_ID_PALETTE_SEED = 7
_MAX_IDS = 256


def depth_image(depth: np.ndarray) -> np.ndarray:
    """[H, W] metres -> [H, W, 3] uint8 grey, near = bright, no surface = black."""
    valid = depth > 0
    if not valid.any():
        return np.zeros((*depth.shape, 3), dtype=np.uint8)
    lo, hi = depth[valid].min(), depth[valid].max()
    scaled = np.where(valid, 1.0 - (depth - lo) / max(hi - lo, 1e-9) * 0.8, 0.0)
    return np.repeat((255 * scaled).astype(np.uint8)[..., None], 3, axis=-1)


def normals_image(normals: np.ndarray) -> np.ndarray:
    """[H, W, 3] unit world normals -> [H, W, 3] uint8 ((n + 1) / 2, black where no surface)."""
    valid = np.any(normals != 0, axis=-1, keepdims=True)
    return (255 * np.where(valid, (normals + 1.0) / 2.0, 0.0)).astype(np.uint8)


def ids_image(ids: np.ndarray) -> np.ndarray:
    """[H, W] instance ids (-1..255) -> [H, W, 3] uint8, a fixed colour per id, background black."""
    palette = np.random.default_rng(_ID_PALETTE_SEED).integers(40, 256, size=(_MAX_IDS + 1, 3))
    palette[0] = 0  # id -1
    return palette[np.clip(ids, -1, _MAX_IDS - 1) + 1].astype(np.uint8)


def contact_sheet(frames: list[RenderedFrame]) -> np.ndarray:
    """[len(frames) * H, 4 * W, 3] uint8 sheet of the given frames (pass a few, not all)."""
    if not frames:
        raise ValueError("frames: need at least one frame for a contact sheet")
    rows = [
        np.concatenate([f.rgb, depth_image(f.depth), normals_image(f.normals), ids_image(f.ids)], axis=1)
        for f in frames
    ]
    return np.concatenate(rows, axis=0)
