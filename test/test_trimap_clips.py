"""Rendered TriMap training clips and the metrics the tiny-trimap evaluation uses."""

from __future__ import annotations

import numpy as np
import pytest

from langscene_core.sim.trajectory import LOOK_AT
from langscene_core.training.trimap_clips import (
    ARC_SPAN_BUCKETS_DEG,
    ARC_SPAN_RANGE_DEG,
    cross_fade,
    normal_error_deg,
    psnr,
    render_clip,
)
from langscene_core.training.trimap_train import MODALITIES
from langscene_core.trimap.palette import make_palette, rgb_to_masks


@pytest.fixture(scope="module")
def clip():
    return render_clip(7, 9, (48, 64))


def test_clip_shapes_and_modalities(clip):
    assert clip.rgb.shape == (9, 48, 64, 3) and clip.normals.shape == (9, 48, 64, 3)
    assert clip.ids.shape == (9, 48, 64) and clip.cam_to_world.shape == (9, 4, 4)
    assert clip.ids.min() >= 0 and 1 in clip.ids and 2 in clip.ids  # background, table, objects
    train = clip.train_clips()
    assert [c.modality for c in train] == list(MODALITIES)
    assert all(c.video.shape == clip.rgb.shape and 0 <= c.video.min() and c.video.max() <= 1 for c in train)
    # palette colours decode back to the instance ids
    assert (rgb_to_masks(train[2].video, make_palette(32)) == clip.ids).all()


def test_camera_moves_along_an_arc_and_normals_face_it(clip):
    centres = clip.cam_to_world[:, :3, 3]
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.min() > 0.005 and steps.max() - steps.min() < 1e-6  # evenly spaced on the arc
    surface = np.linalg.norm(clip.normals, axis=-1) > 0.5
    assert ((clip.ids > 0) == surface).all()
    # camera-frame normals of visible surfaces point back towards the camera (negative z-ish along rays)
    assert (clip.normals[..., 2][surface] < 0.05).mean() > 0.99
    table = clip.ids == 1  # the table is horizontal: in camera frame it is world z rotated by R^T
    world_up_in_camera = clip.cam_to_world[:, 2, :3]  # row 2 of R = R^T e_z
    expected = np.broadcast_to(world_up_in_camera[:, None, None, :], clip.normals.shape)[table]
    assert np.mean(np.sum(clip.normals[table] * expected, axis=-1) > 0.99) > 0.95


def test_cross_fade_and_metrics():
    a, b = np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32)
    fade = cross_fade(a, b, 5)
    assert np.allclose(fade[:, 0, 0, 0], [0, 0.25, 0.5, 0.75, 1])
    assert psnr(fade[2], np.full_like(a, 0.6)) == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    up = np.zeros((2, 2, 3), np.float32)
    up[..., 2] = 1
    tilted = np.zeros_like(up)
    tilted[..., 0], tilted[..., 2] = np.sin(np.radians(30)), np.cos(np.radians(30))
    assert normal_error_deg(tilted, up) == pytest.approx(30.0, abs=1e-3)
    assert normal_error_deg(np.zeros_like(up), up) == pytest.approx(90.0, abs=1e-3)
    up[0, 0] = 0  # pixels without a surface in the truth are ignored
    assert normal_error_deg(tilted, up) == pytest.approx(30.0, abs=1e-3)


def _arc_deg(cam_to_world: np.ndarray) -> float:
    """Azimuth in degrees between the first and last camera around the orbit centre."""
    a, b = (cam_to_world[i, :2, 3] - LOOK_AT[:2] for i in (0, -1))
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def test_arc_width_follows_the_requested_range():
    """Training arcs span ARC_SPAN_RANGE_DEG; each evaluation bucket gets arcs inside it."""
    assert ARC_SPAN_BUCKETS_DEG[0][0] == ARC_SPAN_RANGE_DEG[0] and ARC_SPAN_BUCKETS_DEG[-1][1] == ARC_SPAN_RANGE_DEG[1]
    for low, high in ARC_SPAN_BUCKETS_DEG:
        spans = [_arc_deg(render_clip(seed, 2, (16, 16), (low, high)).cam_to_world) for seed in range(4)]
        assert all(low - 1e-6 <= s <= high + 1e-6 for s in spans), (low, high, spans)
