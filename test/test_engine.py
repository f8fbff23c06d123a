"""The engine without ROS: QueryableScene answers, and LangScene's state machine (idle -> collecting ->
reconstructing -> ready | error), its snapshot swap, cancel, save / load / reset and NOT-ready errors.

The reconstruction is replaced by a controllable fake (the real one is covered by test_reconstruct.py
and the node pipeline test); the scene is the synthetic world's surfaces as a reconstruction gives them
(reconstructed_world.py), each Gaussian carrying the LQC latent of its object's name."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from world_scene import SPEC, make_scene

from langscene_core import engine as engine_module
from langscene_core.capture.frames import Frame
from langscene_core.config import LangsceneConfig, ModelsConfig
from langscene_core.engine import (
    BusyError,
    LangScene,
    NotReadyError,
    QueryableScene,
    QueryOptions,
    State,
)
from langscene_core.geometry.camera import Intrinsics, look_at
from langscene_core.reconstruction.models import load_models
from langscene_core.reconstruction.reconstruct import ReconstructionError
from langscene_core.reconstruction.scene import SceneFileError
from langscene_core.sim import build_world, parse_spec

CONFIG = dataclasses.replace(LangsceneConfig(), models=ModelsConfig(device="cpu"))
K = Intrinsics.from_hfov(64, 48, 60.0)


@pytest.fixture(scope="module")
def models():
    """The bundled tiny CLIP + LQC (its vocabulary names the world's objects)."""
    return load_models(CONFIG.models, CONFIG.densify)


@pytest.fixture(scope="module")
def world():
    return build_world(parse_spec(SPEC))


@pytest.fixture(scope="module")
def scene(world, models):
    return make_scene(world, models)


def frame(i: int) -> Frame:
    angle = np.radians(25.0 * i)
    pose = look_at(np.array([0.7 * np.cos(angle), 0.7 * np.sin(angle), 0.5]), np.zeros(3))
    rgb = np.random.default_rng(i).integers(0, 255, (K.height, K.width, 3), dtype=np.uint8)
    return Frame(stamp=float(i), rgb=rgb, intrinsics=K, cam_to_world=pose)


class FakeReconstruct:
    """Stands in for ``reconstruct``: reports progress, waits until released, reports again (where a
    cancel takes effect), then returns ``scene`` or raises ``error``."""

    def __init__(self, scene, error: Exception | None = None):
        self.scene, self.error = scene, error
        self.started, self.release = threading.Event(), threading.Event()
        self.keyframes = None

    def __call__(self, keyframes, models, config, progress):
        self.keyframes = list(keyframes)
        progress(0.5, "halfway")
        self.started.set()
        assert self.release.wait(30), "the test never released the fake reconstruction"
        progress(0.9, "nearly")
        if self.error is not None:
            raise self.error
        return self.scene


def collecting_engine(models, count: int = 3, config: LangsceneConfig = CONFIG, **kwargs) -> LangScene:
    engine = LangScene(config, models, **kwargs)
    for i in range(count):
        assert engine.add_frame(frame(i)) == "accepted"
    return engine


def run_fake(engine: LangScene, monkeypatch, fake: FakeReconstruct) -> None:
    """Start a background reconstruction with ``fake`` and wait until it reports progress."""
    monkeypatch.setattr(engine_module, "reconstruct", fake)
    engine.start_reconstruction()
    assert fake.started.wait(10)


def test_queryable_scene_finds_the_named_object_and_applies_options(world, scene, models):
    queryable = QueryableScene.build(scene, models, CONFIG.query, CONFIG.grasp)
    result = queryable.answer("red box")
    assert result.object_box is not None, result.message
    box_centre = np.asarray(world.meshes[world.instance_id("red box")].get_axis_aligned_bounding_box().get_center())
    assert np.linalg.norm(result.object_box.pose[:3, 3] - box_centre) < 0.02
    assert set(result.timings) >= {"relevancy", "select", "cluster", "box", "grasps"}

    assert len(queryable.answer("red box", QueryOptions(max_grasps=1)).grasps) <= 1
    assert len(queryable.answer("red box", QueryOptions(max_points=5)).cloud) == 5
    strict = queryable.answer("red box", QueryOptions(relevancy_threshold=0.999))
    assert strict.object_box is None and "nothing relevant" in strict.message
    with pytest.raises(ValueError, match="empty prompt"):
        queryable.answer("  ")


def test_repeated_requests_get_the_kept_answer_and_the_cache_is_bounded(scene, models):
    query = dataclasses.replace(CONFIG.query, answer_cache=2)
    queryable = QueryableScene.build(scene, models, query, CONFIG.grasp)
    first = queryable.answer("red box")
    assert queryable.answer("red box") is first
    assert queryable.answer("red box", QueryOptions(max_grasps=1)) is not first  # other options: other answer
    queryable.answer("blue ball")  # a third distinct request: the least recently used ("red box") goes
    assert queryable.answer("red box") is not first
    uncached = QueryableScene.build(scene, models, dataclasses.replace(CONFIG.query, answer_cache=0), CONFIG.grasp)
    assert uncached.answer("red box") is not uncached.answer("red box")


def test_query_options_refuse_values_out_of_range():
    for bad in ({"relevancy_threshold": 1.0}, {"relevancy_threshold": float("nan")}, {"max_points": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            QueryOptions(**bad)
    assert QueryOptions(negatives=["a"]).negatives == ("a",)


def test_states_from_idle_to_ready_and_queries_answer_from_the_snapshot(scene, models, monkeypatch):
    statuses, scenes = [], []
    engine = LangScene(CONFIG, models, on_status=statuses.append, on_scene=scenes.append)
    assert engine.state is State.IDLE and engine.scene is None
    with pytest.raises(ReconstructionError, match="at least 2 keyframes, have 0"):
        engine.start_reconstruction()
    for i in range(3):
        assert engine.add_frame(frame(i)) == "accepted"
    assert engine.add_frame(frame(0)) == "too_close"
    assert engine.status().state is State.COLLECTING and engine.status().keyframes == 3
    with pytest.raises(NotReadyError, match=r"not ready \(collecting, 3 keyframes\)"):
        engine.query("red box")
    with pytest.raises(NotReadyError, match="no scene to save"):
        engine.save("/tmp/never.ply")

    fake = FakeReconstruct(scene)
    run_fake(engine, monkeypatch, fake)
    assert len(fake.keyframes) == 3
    status = engine.status()
    assert status.state is State.RECONSTRUCTING and status.progress == 0.5 and status.message == "halfway"
    with pytest.raises(BusyError, match="already running"):
        engine.start_reconstruction()
    with pytest.raises(NotReadyError):
        engine.query("red box")
    fake.release.set()
    assert engine.wait(10)
    status = engine.status()
    assert status.state is State.READY and status.progress == 1.0 and status.gaussians == scene.num_gaussians
    assert scenes == [engine.scene] and engine.scene.scene is scene
    assert [s.state for s in statuses] == [State.RECONSTRUCTING, State.READY]
    assert engine.query("red box").object_box is not None


def test_a_reconstruction_in_progress_or_failed_keeps_the_previous_scene(scene, models, monkeypatch):
    engine = collecting_engine(models)
    first = FakeReconstruct(scene)
    first.release.set()
    run_fake(engine, monkeypatch, first)
    assert engine.wait(10) and engine.state is State.READY
    old = engine.scene

    failing = FakeReconstruct(None, ReconstructionError("no keyframe has depth"))
    run_fake(engine, monkeypatch, failing)
    assert engine.state is State.RECONSTRUCTING
    during = engine.query("red box")  # answered from the old snapshot, without waiting
    assert during.object_box is not None and engine.scene is old
    failing.release.set()
    assert engine.wait(10)
    status = engine.status()
    assert status.state is State.ERROR and "reconstruction failed: no keyframe has depth" in status.message
    assert engine.scene is old and status.gaussians == scene.num_gaussians
    assert engine.query("red box").object_box is not None

    crashing = FakeReconstruct(None, KeyError("bug"))
    run_fake(engine, monkeypatch, crashing)
    crashing.release.set()
    assert engine.wait(10)
    assert engine.state is State.ERROR and "crashed: KeyError('bug')" in engine.status().message
    assert engine.scene is old

    out_of_memory = FakeReconstruct(None, MemoryError("CUDA out of memory"))
    run_fake(engine, monkeypatch, out_of_memory)
    out_of_memory.release.set()
    assert engine.wait(10)
    assert engine.state is State.ERROR and "MemoryError('CUDA out of memory')" in engine.status().message
    assert engine.scene is old and engine.query("red box").object_box is not None

    again = FakeReconstruct(scene)  # the next reconstruction works
    again.release.set()
    run_fake(engine, monkeypatch, again)
    assert engine.wait(10) and engine.state is State.READY and engine.scene is not old


def test_cancel_stops_at_the_next_step_and_leaves_the_previous_scene(scene, models, monkeypatch):
    engine = collecting_engine(models)
    assert not engine.cancel()  # nothing running
    fake = FakeReconstruct(scene)
    run_fake(engine, monkeypatch, fake)
    assert engine.cancel()
    fake.release.set()
    assert engine.wait(10)
    status = engine.status()
    assert status.state is State.COLLECTING and status.message == "reconstruction cancelled"
    assert engine.scene is None

    done = FakeReconstruct(scene)
    done.release.set()
    run_fake(engine, monkeypatch, done)
    assert engine.wait(10)
    kept = engine.scene
    again = FakeReconstruct(make_scene(build_world(parse_spec(SPEC)), models))
    run_fake(engine, monkeypatch, again)
    engine.cancel()
    again.release.set()
    assert engine.wait(10)
    assert engine.state is State.READY and engine.scene is kept
    assert "previous scene is kept" in engine.status().message


def test_blocking_reconstruct_installs_its_scene(scene, models, monkeypatch):
    engine = LangScene(CONFIG, models)
    fake = FakeReconstruct(scene)
    fake.release.set()
    monkeypatch.setattr(engine_module, "reconstruct", fake)
    snapshot = engine.reconstruct([frame(0), frame(5)])
    assert len(fake.keyframes) == 2 and engine.scene is snapshot and engine.state is State.READY
    assert not engine.busy


def test_save_load_reset(world, scene, models, monkeypatch, tmp_path):
    config = dataclasses.replace(CONFIG, node=dataclasses.replace(CONFIG.node, scene_dir=str(tmp_path)))
    engine = collecting_engine(models, config=config)
    fake = FakeReconstruct(scene)
    fake.release.set()
    run_fake(engine, monkeypatch, fake)
    assert engine.wait(10)
    path, count = engine.save("scene")  # a name inside node.scene_dir
    assert count == scene.num_gaussians
    assert path == tmp_path.resolve() / "scene.ply" and path.is_file()
    with pytest.raises(SceneFileError, match="does not exist"):
        engine.save(tmp_path / "no" / "dir" / "scene.ply")
    with pytest.raises(SceneFileError, match="outside the scene directory"):
        engine.save(tmp_path.parent / "elsewhere.ply")

    message = engine.reset()
    assert "kept" in message
    status = engine.status()
    assert status.keyframes == 0 and status.state is State.READY and engine.scene is not None

    fresh = LangScene(config, models)
    with pytest.raises(SceneFileError, match="no such file"):
        fresh.load(tmp_path / "missing.ply")
    loaded = fresh.load(path)
    assert fresh.state is State.READY and loaded.num_gaussians == scene.num_gaussians
    np.testing.assert_array_equal(loaded.scene.codes, scene.codes)
    assert fresh.query("red box").object_box is not None

    elsewhere = dataclasses.replace(config, node=dataclasses.replace(config.node, scene_frame="odom"))
    with pytest.raises(SceneFileError, match="frame 'map'"):
        LangScene(elsewhere, models).load(path)

    empty = collecting_engine(models, count=2)
    empty.reset()
    assert empty.status().state is State.IDLE and empty.status().keyframes == 0


def test_clear_scene_drops_the_scene_and_keeps_the_keyframes(scene, models, monkeypatch):
    engine = collecting_engine(models)
    fake = FakeReconstruct(scene)
    fake.release.set()
    run_fake(engine, monkeypatch, fake)
    assert engine.wait(10) and engine.state is State.READY
    assert engine.clear_scene().startswith("scene cleared")
    assert engine.scene is None and engine.state is State.COLLECTING and engine.status().keyframes == 3
    with pytest.raises(NotReadyError):
        engine.query("red box")
    assert engine.clear_scene() == "no scene to clear"


def test_models_are_loaded_explicitly(models, tmp_path):
    engine = LangScene(CONFIG)
    assert not engine.status().models_loaded and engine.status().message == "models not loaded"
    for call in (engine.start_reconstruction, lambda: engine.load(tmp_path / "x.ply")):
        with pytest.raises(NotReadyError, match="models not loaded"):
            call()
    statuses = []
    engine = LangScene(CONFIG, on_status=statuses.append)
    assert engine.load_models() is engine.load_models()
    assert [(s.message.split(" in ")[0], s.models_loaded) for s in statuses] == [
        ("loading models", False),
        ("models loaded", True),
    ]


def test_streams_pair_into_keyframes_and_bad_input_is_counted(models):
    """The default pose_source tf: each image's pose is the scene frame <- its frame in ``transforms``."""
    assert CONFIG.node.pose_source == "tf"
    engine = LangScene(CONFIG, models)
    scene_frame = CONFIG.node.scene_frame
    engine.add_image(0.0, frame(0).rgb, "camera")  # before any intrinsics: dropped once later frames pass it by
    for i in range(1, 4):
        f = frame(i)
        engine.set_intrinsics(K)
        engine.transforms.set_transform(scene_frame, "camera", f.stamp, f.cam_to_world)
        engine.add_image(f.stamp, f.rgb, "camera")
    assert engine.status().keyframes == 3
    np.testing.assert_allclose(engine.keyframes()[-1].cam_to_world, frame(3).cam_to_world, atol=1e-9)
    engine.transforms.set_transform(scene_frame, "camera", 4.0, frame(4).cam_to_world)
    engine.add_image(4.0, np.zeros((10, 10, 3), np.uint8), "camera")  # pairs, then fails the size check
    assert engine.reject("image: bad encoding") == 1
    engine.add_pose(4.0, frame(4).cam_to_world)  # a pose stream the tf mode does not read: refused, said why
    status = engine.status()
    assert status.rejected == {
        "image: size 10x10 does not match camera_info 64x48": 1,
        "image: bad encoding": 1,
        "camera_pose: node.pose_source is tf, not topic": 1,
    }
    assert status.summary().startswith("3 keyframes; rejected 3; dropped: ")
    assert status.keyframes == 3
    # every image is accounted for: the first waits for camera_info then is dropped once frames pass it
    assert {k: v for k, v in status.images.items() if v} == {"received": 5, "accepted": 3, "rejected": 1, "dropped": 1}


def test_inputs_from_the_future_and_oversized_images_are_rejected_with_a_reason(models):
    now = [1000.0]
    config = dataclasses.replace(
        CONFIG,
        # depth_wait_s 0: the one image taken goes on at once, not waiting for a first depth; the camera_pose stream
        node=dataclasses.replace(CONFIG.node, max_future_s=2.0, depth_wait_s=0.0, pose_source="topic"),
        limits=dataclasses.replace(CONFIG.limits, max_image_pixels=64 * 48),
    )
    engine = LangScene(config, models, clock=lambda: now[0])
    engine.set_intrinsics(K)
    f = frame(1)
    engine.add_pose(1001.0, f.cam_to_world)
    engine.add_image(1001.0, f.rgb)  # 1 s ahead: clock skew within the bound
    engine.add_pose(1003.5, f.cam_to_world)
    engine.add_image(1003.5, f.rgb)
    engine.add_depth(1000.0, np.ones((49, 64), np.float32))
    assert engine.status().keyframes == 1
    assert engine.status().rejected == {
        "camera_pose: stamped more than 2.0 s ahead of the clock": 1,
        "image: stamped more than 2.0 s ahead of the clock": 1,
        "depth: more than 3072 pixels (limits.max_image_pixels)": 1,
    }


def test_alternatives_are_other_distinct_objects_best_first(models):
    """max_objects: the answer's object, then up to N - 1 other objects the prompt matches, each a
    whole world object (never the table, never sharing a Gaussian), best score first."""
    world = build_world(
        parse_spec(
            {
                "objects": [
                    {"name": "red box", "shape": "box", "color": "red", "size": 0.07, "position": [0.1, 0.0]},
                    {"name": "red ball", "shape": "ball", "color": "red", "size": 0.06, "position": [0.0, -0.15]},
                    {
                        "name": "red cylinder",
                        "shape": "cylinder",
                        "color": "red",
                        "size": 0.07,
                        "position": [-0.12, 0.1],
                    },
                ]
            }
        )
    )
    queryable = QueryableScene.build(make_scene(world, models), models, CONFIG.query, CONFIG.grasp)
    centres = {
        o.name: np.asarray(world.meshes[world.instance_id(o.name)].get_axis_aligned_bounding_box().get_center())
        for o in world.spec.objects
    }
    result = queryable.answer("red box", QueryOptions(max_objects=3, relevancy_threshold=0.3))
    assert np.linalg.norm(result.object_box.pose[:3, 3] - centres["red box"]) < 0.02
    assert 0.0 < result.object_score <= 1.0
    assert 1 <= len(result.alternatives) <= 2
    scores = [c.score for c in result.alternatives]
    assert scores == sorted(scores, reverse=True)
    seen = set(result.object_indices.tolist())
    for candidate in result.alternatives:
        nearest = min(centres, key=lambda name: np.linalg.norm(candidate.box.pose[:3, 3] - centres[name]))
        assert nearest != "red box" and np.linalg.norm(candidate.box.pose[:3, 3] - centres[nearest]) < 0.03
        assert seen.isdisjoint(candidate.indices.tolist())
        seen |= set(candidate.indices.tolist())
    assert queryable.answer("red box", QueryOptions(relevancy_threshold=0.3)).alternatives == ()
    with pytest.raises(ValueError, match="max_objects"):
        QueryOptions(max_objects=0)


def test_update_config_applies_to_the_next_query_and_drops_kept_answers(scene, models, monkeypatch):
    engine = collecting_engine(models)
    fake = FakeReconstruct(scene)
    fake.release.set()
    run_fake(engine, monkeypatch, fake)
    assert engine.wait(10)
    first = engine.query("red box")
    assert first.object_box is not None and engine.query("red box") is first  # a kept answer
    strict = dataclasses.replace(engine.config.query, relevancy_threshold=0.999)
    engine.update_config(strict, engine.config.grasp)
    assert engine.config.query.relevancy_threshold == 0.999
    assert engine.query("red box").object_box is None


def test_auto_reconstruct_after_n_new_keyframes(scene, models, monkeypatch):
    """node.auto_reconstruct_keyframes 3: the third keyframe starts a reconstruction by itself; the
    next one waits for three more (keyframes arriving during a reconstruction count for the next)."""
    config = dataclasses.replace(CONFIG, node=dataclasses.replace(CONFIG.node, auto_reconstruct_keyframes=3))
    fake = FakeReconstruct(scene)
    monkeypatch.setattr(engine_module, "reconstruct", fake)
    statuses = []
    engine = collecting_engine(models, count=2, config=config, on_status=statuses.append)
    assert not engine.busy
    assert engine.add_frame(frame(2)) == "accepted"
    assert fake.started.wait(10) and len(fake.keyframes) == 3
    assert any(
        s.message == "reconstructing from 3 keyframes (auto: 3 new keyframes (node.auto_reconstruct_keyframes))"
        for s in statuses
    )
    fake.release.set()
    assert engine.wait(10) and engine.state is State.READY
    second = FakeReconstruct(scene)
    second.release.set()
    monkeypatch.setattr(engine_module, "reconstruct", second)
    for i in (3, 4):
        engine.add_frame(frame(i))
    assert not second.started.is_set()
    engine.add_frame(frame(5))
    assert second.started.wait(10) and len(second.keyframes) == 6
    assert engine.wait(10)


def test_auto_reconstruct_when_the_camera_is_still(scene, models, monkeypatch):
    """node.auto_reconstruct_still_s 1.0: frames that keep coming without a new keyframe (the camera does
    not move) for 1 s of image stamps start a reconstruction of the waiting keyframes; once built,
    a still camera starts nothing more."""
    config = dataclasses.replace(CONFIG, node=dataclasses.replace(CONFIG.node, auto_reconstruct_still_s=1.0))
    fake = FakeReconstruct(scene)
    fake.release.set()
    monkeypatch.setattr(engine_module, "reconstruct", fake)
    statuses = []
    engine = collecting_engine(models, count=2, config=config, on_status=statuses.append)  # stamps 0 and 1
    still = frame(1)
    for stamp in (1.3, 1.6, 1.9):
        assert engine.add_frame(dataclasses.replace(still, stamp=stamp)) == "too_close"
    assert not fake.started.is_set()
    engine.add_frame(dataclasses.replace(still, stamp=2.0))
    assert fake.started.wait(10) and engine.wait(10) and engine.state is State.READY
    assert len(fake.keyframes) == 2
    assert any(
        s.message.endswith("(auto: no new keyframe for 1.0 s (node.auto_reconstruct_still_s))") for s in statuses
    )
    again = FakeReconstruct(scene)
    monkeypatch.setattr(engine_module, "reconstruct", again)
    engine.add_frame(dataclasses.replace(still, stamp=5.0))
    assert not again.started.is_set() and not engine.busy
