"""Normals from depth and their RGB encoding, the palette, the three passes with a tiny random model,
and densify_pair's assembly (keyframe data at the ends; PnP registration with depth, SfM without,
and the fallback)."""

import dataclasses

import numpy as np
import pytest
import torch

from langscene_core.config import TrimapModelConfig
from langscene_core.geometry.camera import Intrinsics, pixel_rays
from langscene_core.geometry.normals import depth_to_normals, normals_to_rgb, normals_to_world, rgb_to_normals
from langscene_core.sim.trajectory import orbit_pose
from langscene_core.trimap import passes
from langscene_core.trimap.loading import build_tiny_pipeline
from langscene_core.trimap.palette import MAX_PALETTE, make_palette, masks_to_rgb, rgb_to_masks
from langscene_core.trimap.passes import TrimapKeyframe, densify_pair, model_size, normal_pass, rgb_pass, semantic_pass
from langscene_core.trimap.poses import PoseRecoveryError, RecoveredPoses
from langscene_core.trimap.register import FrameRegistration

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is faster

SETTINGS = TrimapModelConfig(frames=9, steps=2, guidance=3.0, height=32, width=48)
INTRINSICS = Intrinsics.from_hfov(40, 24, 60.0)  # keyframe size differs from the model size


@pytest.fixture(scope="module")
def pipe():
    pipe = build_tiny_pipeline(seed=1)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _plane_depth(normal: np.ndarray, offset: float, intrinsics: Intrinsics) -> np.ndarray:
    """Depth of the plane normal . X = offset (camera frame) through each pixel centre."""
    rays = pixel_rays(intrinsics)
    return (offset / (rays @ normal)).astype(np.float32)


def test_depth_to_normals_on_a_tilted_plane():
    intrinsics = Intrinsics.from_hfov(64, 48, 60.0)
    normal = np.array([0.3, -0.2, -1.0]) / np.linalg.norm([0.3, -0.2, -1.0])  # faces the camera
    depth = _plane_depth(normal, -1.0, intrinsics)
    depth[10, 10] = 0.0  # a missing measurement
    normals = depth_to_normals(depth, intrinsics)
    assert normals.shape == (48, 64, 3) and normals.dtype == np.float32
    valid = np.ones((48, 64), bool)
    valid[10, 10] = False
    assert np.allclose(normals[valid], normal, atol=1e-4)
    assert np.allclose(normals[10, 10], 0.0)
    flipped = depth_to_normals(_plane_depth(-normal, 1.0, intrinsics), intrinsics)
    assert np.allclose(flipped, normal, atol=1e-4)  # still oriented towards the camera
    with pytest.raises(ValueError, match="intrinsics"):
        depth_to_normals(depth[:10], intrinsics)


def test_normal_rgb_encoding_round_trip_and_world_rotation():
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(20, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    colours = normals_to_rgb(normals)
    assert colours.min() >= 0 and colours.max() <= 1
    assert np.allclose(rgb_to_normals(colours), normals, atol=1e-6)
    assert np.allclose(rgb_to_normals(np.full(3, 0.5)), 0.0)
    pose = orbit_pose(30, 35, 0.7)
    assert np.allclose(normals_to_world(normals, pose), normals @ pose[:3, :3].T, atol=1e-6)


def test_palette_is_distinct_and_prefix_stable():
    palette = make_palette(64)
    assert np.array_equal(palette[0], [0, 0, 0])
    distances = np.linalg.norm(palette[:, None] - palette[None], axis=-1) + np.eye(64) * 9
    assert distances.min() > 0.2
    assert np.array_equal(make_palette(256)[:64], palette)
    with pytest.raises(ValueError, match="palette size"):
        make_palette(MAX_PALETTE + 1)


def test_palette_round_trip_exact_on_clean_maps_and_robust_to_noise():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 200, size=(3, 40, 50))
    palette = make_palette(200)
    colours = masks_to_rgb(ids, palette)
    assert colours.shape == (3, 40, 50, 3)
    assert np.array_equal(rgb_to_masks(colours, palette), ids)
    noisy = np.clip(colours + rng.uniform(-0.04, 0.04, colours.shape), 0, 1)
    assert np.array_equal(rgb_to_masks(noisy, palette), ids)
    with pytest.raises(ValueError, match="palette has"):
        masks_to_rgb(np.array([[200]]), palette)


def test_model_size_defaults_to_native(pipe):
    assert model_size(pipe, TrimapModelConfig(height=0, width=0)) == pipe.native_size
    assert model_size(pipe, SETTINGS) == (32, 48)


def test_rgb_pass_shape_and_range(pipe):
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 24, 40, 3), dtype=np.float32)
    frames = rgb_pass(pipe, a, b, SETTINGS, torch.Generator().manual_seed(0))
    assert frames.shape == (9, 24, 40, 3) and frames.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= 1 and frames.std() > 0.01


def test_normal_pass_gives_unit_normals(pipe):
    normal = np.array([0.0, -0.6, -0.8])
    a = depth_to_normals(_plane_depth(normal, -1.0, INTRINSICS), INTRINSICS)
    b = np.broadcast_to(np.array([0.6, 0.0, -0.8], np.float32), a.shape).copy()
    frames = normal_pass(pipe, a, b, SETTINGS, torch.Generator().manual_seed(0))
    assert frames.shape == (9, 24, 40, 3) and frames.dtype == np.float32
    lengths = np.linalg.norm(frames, axis=-1)
    assert np.all((np.abs(lengths - 1) < 1e-4) | (lengths == 0))
    assert (lengths > 0).mean() > 0.9


def test_semantic_pass_decodes_to_present_ids(pipe):
    a = np.zeros((3, 24, 40), np.int64)
    a[0, :, 20:], a[1, 5:15, 5:15], a[2] = 3, 7, 1
    b = np.roll(a, 4, axis=2)
    b[1, 18:, :10] = 12
    frames = semantic_pass(pipe, a, b, SETTINGS, torch.Generator().manual_seed(0))
    assert frames.shape == (9, 3, 24, 40) and frames.dtype == np.int64
    for level in range(3):
        allowed = set(np.union1d(a[level], b[level])) | {0}
        assert set(np.unique(frames[:, level])) <= allowed


def _keyframes():
    rng = np.random.default_rng(2)
    depth = _plane_depth(np.array([0.0, -0.6, -0.8]), -1.0, INTRINSICS)
    masks = rng.integers(0, 4, size=(3, 24, 40))
    return [
        TrimapKeyframe(
            rgb=rng.random((24, 40, 3), dtype=np.float32),
            cam_to_world=orbit_pose(az, 35, 0.7),
            intrinsics=INTRINSICS,
            depth=depth,
            masks=masks,
        )
        for az in (0, 30)
    ]


def test_densify_pair_registers_frames_to_keyframes_with_depth(pipe, monkeypatch):
    """Keyframes with depth: every generated frame goes to PnP registration with both keyframes' views;
    a frame it drops keeps a NaN pose and its reason, and the clip's report says so."""
    key_a, key_b = _keyframes()
    truth = np.array([orbit_pose(az, 35, 0.7) for az in np.linspace(0, 30, 9)])

    def fake_registration(frames, intrinsics, keyframes, settings):
        assert frames.shape == (9, 24, 40, 3) and sorted(keyframes) == [0, 8]
        assert np.array_equal(keyframes[8].depth, key_b.depth) and np.array_equal(keyframes[0].rgb, key_a.rgb)
        return [
            FrameRegistration(None, 12, "12 PnP inliers < 25") if t == 4 else FrameRegistration(truth[t] + 1e-3, 40)
            for t in range(9)
        ]

    monkeypatch.setattr(passes, "register_frames", fake_registration)
    monkeypatch.setattr(passes, "recover_poses", lambda *args: pytest.fail("SfM used although keyframes have depth"))
    clip = densify_pair(pipe, key_a, key_b, SETTINGS, generator=torch.Generator().manual_seed(0))
    assert clip.rgb.shape == (9, 24, 40, 3) and clip.normals.shape == (9, 24, 40, 3)
    assert clip.masks.shape == (9, 3, 24, 40) and clip.poses.shape == (9, 4, 4) and clip.pose_method == "pnp"
    assert np.array_equal(clip.rgb[0], key_a.rgb) and np.array_equal(clip.rgb[-1], key_b.rgb)
    assert np.array_equal(clip.masks[0], key_a.masks) and np.array_equal(clip.masks[-1], key_b.masks)
    assert np.allclose(clip.normals[0], key_a.camera_normals())
    assert np.isnan(clip.poses[4]).all() and clip.dropped == {4: "12 PnP inliers < 25"}
    assert np.allclose(np.delete(clip.poses, 4, axis=0), np.delete(truth, 4, axis=0) + 1e-3)
    assert clip.report() == "6/7 generated frames used (pnp), dropped frame 4: 12 PnP inliers < 25"


def test_densify_pair_with_sfm_poses_without_depth(pipe, monkeypatch):
    """Keyframes without depth (normals given): the clip is posed by SfM aligned to the keyframes."""
    key_a, key_b = (dataclasses.replace(k, depth=None, normals=k.camera_normals()) for k in _keyframes())
    truth = np.array([orbit_pose(az, 35, 0.7) for az in np.linspace(0, 30, 9)])
    registered = np.array([True] * 6 + [False] + [True] * 2)

    def fake_recovery(frames, intrinsics, known, settings, workdir):
        assert frames.shape == (9, 24, 40, 3) and sorted(known) == [0, 8]
        poses = truth + 1e-3
        poses[6] = np.nan
        return RecoveredPoses(poses=poses, registered=registered, keyframe_error_m=1e-3)

    monkeypatch.setattr(passes, "recover_poses", fake_recovery)
    clip = densify_pair(pipe, key_a, key_b, SETTINGS, generator=torch.Generator().manual_seed(0))
    assert clip.pose_method == "sfm" and clip.pose_message == "" and clip.dropped == {6: "SfM did not register it"}
    assert np.array_equal(clip.poses[0], key_a.cam_to_world) and np.array_equal(clip.poses[-1], key_b.cam_to_world)
    assert np.allclose(clip.poses[1:6], truth[1:6] + 1e-3)
    assert clip.report().startswith("6/7 generated frames used (sfm)")


def test_densify_pair_falls_back_without_poses(pipe, monkeypatch):
    def failing_recovery(*args):
        raise PoseRecoveryError("SfM registered 10% of the generated frames")

    monkeypatch.setattr(passes, "recover_poses", failing_recovery)
    key_a, key_b = _keyframes()
    plain_a = TrimapKeyframe(rgb=key_a.rgb, cam_to_world=key_a.cam_to_world, intrinsics=INTRINSICS)
    plain_b = TrimapKeyframe(rgb=key_b.rgb, cam_to_world=key_b.cam_to_world, intrinsics=INTRINSICS)
    clip = densify_pair(pipe, plain_a, plain_b, SETTINGS, frames=17)
    assert clip.rgb.shape == (17, 24, 40, 3)
    assert clip.poses is None and "10%" in clip.pose_message and clip.pose_method == "sfm"
    assert clip.report() == "0/15 generated frames used (sfm: SfM registered 10% of the generated frames)"
    assert clip.normals is None and clip.masks is None  # no depth, normals or masks given
    with pytest.raises(ValueError, match="intrinsics"):
        densify_pair(
            pipe,
            plain_a,
            TrimapKeyframe(
                rgb=key_b.rgb[:20], cam_to_world=key_b.cam_to_world, intrinsics=Intrinsics.from_hfov(40, 20, 60.0)
            ),
            SETTINGS,
        )


def test_keyframe_from_pipeline_frame():
    from langscene_core.capture.frames import Frame

    rgb = np.full((24, 40, 3), 255, np.uint8)
    depth = _plane_depth(np.array([0.0, 0.0, -1.0]), -1.0, INTRINSICS)
    depth[0, 0] = np.nan
    frame = Frame(stamp=0.0, rgb=rgb, intrinsics=INTRINSICS, cam_to_world=orbit_pose(0, 35, 0.7), depth=depth)
    key = TrimapKeyframe.from_frame(frame, masks=np.zeros((3, 24, 40), np.int64))
    assert key.rgb.dtype == np.float32 and np.allclose(key.rgb, 1.0)
    assert key.depth[0, 0] == 0 and key.masks.shape == (3, 24, 40)
    normals = key.camera_normals()
    assert np.allclose(normals[5:, 5:], [0, 0, -1], atol=1e-4) and np.allclose(normals[0, 0], 0)
