"""Registration of generated frames to keyframes with depth (langscene_core.trimap.register): matching,
lifting, PnP and its checks on exact correspondences, then rendered in-between views standing in for
generated frames (kept frames within 2 cm / 2 degrees of the truth), and the reconstruction job training
on 2 + N frames of a pair."""

import dataclasses

import numpy as np
import pytest

from langscene_core.config import DensifyConfig
from langscene_core.geometry.camera import Intrinsics, pixel_rays, project_points
from langscene_core.sim.generate import random_spec
from langscene_core.sim.render import render
from langscene_core.sim.scene import build_world
from langscene_core.sim.trajectory import orbit_pose
from langscene_core.trimap.register import (
    KeyframeView,
    _camera,
    lift_keypoints,
    match_descriptors,
    register_frame,
    register_frames,
)

INTRINSICS = Intrinsics.from_hfov(160, 120, 60.0)


def _pose_errors(estimated: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(centre distance in metres, rotation angle in degrees) between two cam_to_world poses."""
    relative = estimated[:3, :3].T @ truth[:3, :3]
    angle = np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1)))
    return float(np.linalg.norm(estimated[:3, 3] - truth[:3, 3])), float(angle)


def _estimation(settings: DensifyConfig):
    import pycolmap

    options = pycolmap.AbsolutePoseEstimationOptions()
    options.ransac.max_error = settings.pnp_max_error_px
    options.ransac.random_seed = 0
    return options


def test_match_descriptors_finds_mutual_unambiguous_pairs():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 128)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    order = rng.permutation(50)
    b = a[order] + rng.normal(scale=0.01, size=(50, 128)).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    pairs = match_descriptors(a, b)
    assert len(pairs) == 50 and np.array_equal(order[pairs[:, 1]], pairs[:, 0])
    # a descriptor with two equally good partners is ambiguous: the ratio test drops it
    twin = np.concatenate([b, b[:1]])
    assert order[0] not in match_descriptors(a, twin)[:, 0] and len(match_descriptors(a, twin)) == 49
    assert match_descriptors(a[:1], b).shape == (0, 2)


def test_lift_keypoints_on_a_plane_and_at_a_depth_step():
    pose = orbit_pose(20, 35, 0.7)
    normal = np.array([0.0, -0.6, -0.8])
    depth = (-1.0 / (pixel_rays(INTRINSICS) @ normal)).astype(np.float64)
    xy = np.array([[10.3, 20.7], [80.5, 60.5], [150.0, 100.2]])
    points = lift_keypoints(xy, depth, INTRINSICS, pose)
    uv, z = project_points(points, INTRINSICS, pose)
    assert np.allclose(uv, xy, atol=1e-9) and np.all(z > 0)
    step = depth.copy()
    step[:, 81:] += 0.2  # a 20 cm step right of the second keypoint's pixel: its neighbourhood spans it
    lifted = lift_keypoints(xy, step, INTRINSICS, pose)
    assert np.isnan(lifted[1]).all() and np.isfinite(lifted[[0, 2]]).all()
    holes = depth.copy()
    holes[20, 10] = 0.0
    assert np.isnan(lift_keypoints(xy[:1], holes, INTRINSICS, pose)).all()


def test_register_frame_on_exact_matches_and_its_checks():
    settings = DensifyConfig()
    rng = np.random.default_rng(1)
    keys = np.array([orbit_pose(0, 35, 0.7)[:3, 3], orbit_pose(40, 35, 0.7)[:3, 3]])
    truth = orbit_pose(20, 35, 0.7)
    points = rng.uniform([-0.2, -0.2, 0.0], [0.2, 0.2, 0.15], size=(60, 3))
    uv, _ = project_points(points, INTRINSICS, truth)
    outliers = uv.copy()
    outliers[:15] = rng.uniform([0, 0], [160, 120], size=(15, 2))  # a quarter of the matches wrong
    result = register_frame(outliers, points, _camera(INTRINSICS), _estimation(settings), keys, settings)
    assert result.reason == "" and result.inliers >= 45
    distance, angle = _pose_errors(result.pose, truth)
    assert distance < 1e-6 and angle < 1e-4

    few = register_frame(uv[:10], points[:10], _camera(INTRINSICS), _estimation(settings), keys, settings)
    assert few.pose is None and few.reason == "10 2D-3D matches < densify.pnp_min_inliers=25"

    away = orbit_pose(180, 35, 0.7)  # the far side of the table: no in-between view is there
    uv_away, _ = project_points(points, INTRINSICS, away)
    far = register_frame(uv_away, points, _camera(INTRINSICS), _estimation(settings), keys, settings)
    assert far.pose is None and "from the keyframes' baseline" in far.reason


def test_register_frames_refuses_bad_input():
    frames = np.zeros((3, 120, 160, 3), dtype=np.float32)
    key = KeyframeView(frames[0], np.ones((120, 160)), np.eye(4))
    with pytest.raises(ValueError, match="two keyframe"):
        register_frames(frames, INTRINSICS, {0: key})
    with pytest.raises(ValueError, match="frames must be"):
        register_frames(frames[:, :100], INTRINSICS, {0: key, 2: key})


@pytest.fixture(scope="module")
def rendered_clip():
    """9 views over 30 degrees of orbit at 160x120 (frames 0 and 8 the keyframes, with depth)."""
    truth = np.array([orbit_pose(az, 35.0, 0.7) for az in np.linspace(0.0, 30.0, 9)])
    views = render(build_world(random_spec(seed=0, count=4)), INTRINSICS, truth)
    return truth, views


@pytest.mark.slow  # SIFT on nine 480x360 frames: about 20 s alone
def test_rendered_in_between_views_register_within_2_cm_and_2_degrees(rendered_clip):
    truth, views = rendered_clip
    keys = {i: KeyframeView(views[i].rgb, views[i].depth, truth[i]) for i in (0, 8)}
    results = register_frames(np.array([v.rgb for v in views]), INTRINSICS, keys, DensifyConfig())
    kept = [i for i, r in enumerate(results[1:-1], start=1) if r.pose is not None]
    assert len(kept) >= 4, [r.reason for r in results]
    for i in kept:
        distance, angle = _pose_errors(results[i].pose, truth[i])
        assert distance < 0.02 and angle < 2.0, (i, distance, angle)
    for r in results[1:-1]:
        assert (r.pose is None) == bool(r.reason)


@pytest.mark.slow  # three TriMap passes, registration and a short field training: about 60 s alone
def test_reconstruct_trains_on_registered_generated_frames(rendered_clip, monkeypatch, tmp_path_factory):
    """The rendered views stand in for the RGB pass's frames: the job registers them, trains on the two
    keyframes plus every registered frame (with the normal and semantic passes' frames) and reports the
    pair's count."""
    from language_helpers import tiny_models_config

    from langscene_core.config import FieldConfig, LangsceneConfig, TrimapModelConfig
    from langscene_core.reconstruction.models import load_models
    from langscene_core.reconstruction.reconstruct import reconstruct
    from langscene_core.trimap import passes
    from langscene_core.trimap.loading import build_tiny_pipeline

    truth, views = rendered_clip
    stand_in = np.array([v.rgb for v in views], dtype=np.float32) / 255.0
    monkeypatch.setattr(passes, "rgb_pass", lambda *args: stand_in.copy())
    models = load_models(tiny_models_config(tmp_path_factory.mktemp("models")), DensifyConfig(mode="trimap"))
    models = dataclasses.replace(
        models,
        trimap=build_tiny_pipeline(),
        config=dataclasses.replace(models.config, trimap=TrimapModelConfig(frames=9, steps=2)),
    )
    config = dataclasses.replace(
        LangsceneConfig(),
        models=models.config,
        densify=DensifyConfig(mode="trimap"),
        field=FieldConfig(geometry_steps=20, language_steps=10, densify_start=1000, init_max_points=3000),
    )
    keyframes = [views[i].to_camera_frame(stamp=float(i)) for i in (0, 8)]
    scene = reconstruct(keyframes, models, config)
    (note,) = scene.info["notes"]
    used = int(note.split(": ")[1].split("/")[0])
    assert used >= 4 and note.startswith(f"pair 1: {used}/7 generated frames used (pnp)")
    assert scene.info["keyframes"] == 2 and scene.info["frames"] == 2 + used
