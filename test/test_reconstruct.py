"""The reconstruction job end to end with tiny random models (structure, not quality: the bundled
models' tests check quality), and the scene snapshot's save / load."""

import dataclasses

import numpy as np
import pytest
from language_helpers import tiny_models_config

from langscene_core.config import FieldConfig, LangsceneConfig
from langscene_core.query.answer import scene_relevancy
from langscene_core.query.objects import query_object
from langscene_core.reconstruction.models import load_models
from langscene_core.reconstruction.reconstruct import ReconstructionError, reconstruct
from langscene_core.reconstruction.scene import SceneFileError, load_scene, save_scene
from langscene_core.sim import build_world, capture_poses, intrinsics_of, parse_spec, render

SPEC = {
    "objects": [
        {"name": "red box", "shape": "box", "color": "red", "size": 0.08, "position": [0.08, 0.0]},
        {"name": "blue ball", "shape": "ball", "color": "blue", "size": 0.07, "position": [-0.1, 0.05]},
    ],
    "camera": {"width": 64, "height": 48, "views": 6, "radius": 0.6},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_models(tiny_models_config(tmp_path_factory.mktemp("models")), LangsceneConfig().densify)


@pytest.fixture(scope="module")
def keyframes():
    spec = parse_spec(SPEC)
    frames = render(build_world(spec), intrinsics_of(spec.camera), capture_poses(spec.camera))
    return [f.to_camera_frame(stamp=float(i)) for i, f in enumerate(frames)]


def small_config(models) -> LangsceneConfig:
    return dataclasses.replace(
        LangsceneConfig(),
        models=models.config,
        field=FieldConfig(geometry_steps=20, language_steps=10, densify_start=1000, init_max_points=3000),
    )


@pytest.fixture(scope="module")
def scene(models, keyframes):
    reports = []
    scene = reconstruct(keyframes, models, small_config(models), lambda f, m: reports.append(f))
    assert reports and reports[-1] == 1.0 and all(b >= a - 1e-9 for a, b in zip(reports, reports[1:]))
    return scene


def test_scene_is_a_consistent_snapshot(scene, models):
    n = scene.num_gaussians
    assert 1000 < n <= 3000
    assert scene.means.shape == (n, 3) and scene.colors.shape == (n, 3) and scene.normals.shape == (n, 3)
    assert scene.codes.shape == (n, 3) and scene.codes.dtype == np.int64
    assert scene.codes.min() >= 0 and scene.codes.max() < models.code_features.shape[0]
    np.testing.assert_allclose(np.linalg.norm(scene.normals, axis=1), 1.0, atol=1e-4)
    # the field was initialised on the table and the objects: centres stay near the table top
    assert np.all(np.abs(scene.means[:, :2]).max(axis=0) < [0.6, 0.45]) and scene.means[:, 2].max() < 0.2
    # every Gaussian's code is the nearest codebook entry to its latent
    latents = scene.gaussians.latents.detach().reshape(-1, 3)
    np.testing.assert_array_equal(models.lqc.code_of(latents).reshape(n, 3).numpy(), scene.codes)
    assert scene.info["keyframes"] == 6 and scene.frame_id == "map"


def test_query_runs_on_the_scene(scene, models):
    relevancy = scene_relevancy(scene.codes, models, "red box", ("object", "things", "stuff", "texture"))
    assert relevancy.values.shape == (scene.num_gaussians,) and 0 <= relevancy.level < 3
    assert np.all((relevancy.values > 0) & (relevancy.values < 1))
    config = LangsceneConfig()
    result = query_object(
        relevancy.values, scene.means, scene.colors, config.query, config.grasp, scene.normals, threshold=0.0
    )
    assert len(result.cloud) == min(scene.num_gaussians, config.query.max_points)


def test_save_load_round_trip(scene, models, tmp_path):
    path = save_scene(scene, tmp_path / "scene")
    assert path.suffix == ".ply"
    loaded = load_scene(path, models.lqc, models.config.lqc.checkpoint)
    np.testing.assert_array_equal(loaded.means, scene.means)
    np.testing.assert_array_equal(loaded.codes, scene.codes)
    assert loaded.frame_id == scene.frame_id and loaded.info == scene.info
    with pytest.raises(SceneFileError, match="built with LQC"):
        load_scene(path, models.lqc, "bundled:another-lqc")
    with pytest.raises(SceneFileError, match="no such file"):
        load_scene(tmp_path / "missing.ply", models.lqc, models.config.lqc.checkpoint)


def test_bad_keyframe_sets_are_refused(models, keyframes):
    with pytest.raises(ReconstructionError, match="at least 2 keyframes"):
        reconstruct(keyframes[:1], models, small_config(models))
    without_depth = [dataclasses.replace(f, depth=None) for f in keyframes]
    with pytest.raises(ReconstructionError, match="depth"):
        reconstruct(without_depth, models, small_config(models))


@pytest.mark.slow
def test_trimap_densification_runs_and_reports_dropped_frames(models, keyframes):
    """With densify.mode trimap the job runs all three passes per keyframe pair. A tiny random model's
    frames cannot be registered by SfM, so they are dropped and the scene says so (the fallback)."""
    from langscene_core.config import DensifyConfig, TrimapModelConfig
    from langscene_core.trimap.loading import build_tiny_pipeline

    densifying = dataclasses.replace(
        models,
        trimap=build_tiny_pipeline(),
        config=dataclasses.replace(models.config, trimap=TrimapModelConfig(frames=9, steps=2)),
    )
    config = dataclasses.replace(small_config(models), densify=DensifyConfig(mode="trimap"))
    scene = reconstruct(keyframes[:3], densifying, config)
    assert scene.num_gaussians > 0 and scene.info["keyframes"] == 3
    assert len(scene.info["notes"]) == 2 and all("dropped" in note for note in scene.info["notes"])
