"""Over ROS: ~/save_scene and ~/load_scene stay inside node.scene_dir (absolute paths elsewhere, '..'
and symlinks out refused), never replace a file langscene did not write, and name the absolute path."""

import dataclasses

import numpy as np
import pytest
import yaml
from language_helpers import tiny_models_config

from langscene.srv import SceneFile
from langscene_core.config import LangsceneConfig, LqcTrainConfig, NodeConfig, to_dict
from langscene_core.field.gaussians import Gaussians
from langscene_core.language.lqc import LQC
from langscene_core.reconstruction.scene import build_scene, save_scene
from langscene_ros.client import NodeClient

pytestmark = pytest.mark.ros


def random_scene(n: int):
    """A scene of n random Gaussians with no LQC recorded (the node recomputes codes with its own)."""
    rng = np.random.default_rng(n)
    gaussians = Gaussians.from_points(rng.random((n, 3)), rng.random((n, 3)))
    lqc = LQC(LqcTrainConfig(feature_dim=4, codebook_size=4, hidden_dims=(4,)))
    return build_scene(gaussians, lqc, "map", {})


def test_scene_files_stay_in_the_scene_directory(node_process, tmp_path):
    scenes, outside = tmp_path / "scenes", tmp_path / "outside"
    scenes.mkdir()
    outside.mkdir()
    config = dataclasses.replace(
        LangsceneConfig(), node=NodeConfig(scene_dir=str(scenes)), models=tiny_models_config(tmp_path)
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"langscene": {"ros__parameters": to_dict(config)}}))
    save_scene(random_scene(30), scenes / "kitchen")
    save_scene(random_scene(20), outside / "other")  # loadable, but not the node's to read
    (scenes / "out").symlink_to(outside)
    settings = scenes / "settings.json"
    settings.write_text('{"arm": {"max_speed": 0.5}}')
    outside_before = sorted(p.name for p in outside.iterdir())

    node = node_process("--params-file", str(params))
    client = NodeClient("scene_files_test_client")
    try:

        def call(service: str, path: str):
            return client.call(SceneFile, service, SceneFile.Request(path=path), timeout_s=90.0)

        loaded = call("load_scene", "kitchen")
        assert loaded.success and f"30 Gaussians from {scenes / 'kitchen.ply'}" in loaded.message, loaded.message
        for path in (str(outside / "other.ply"), "../outside/other", "out/other"):
            refused = call("load_scene", path)
            assert not refused.success and "outside the scene directory" in refused.message, (path, refused.message)

        saved = call("save_scene", "copy")
        assert saved.success and str(scenes / "copy.ply") in saved.message, saved.message
        assert (scenes / "copy.ply").is_file() and (scenes / "copy.json").is_file()
        again = call("save_scene", str(scenes / "copy.ply"))  # an absolute path inside, our own file
        assert again.success, again.message
        for path in (str(outside / "stolen"), "../stolen", "out/stolen", "/etc/langscene_test"):
            refused = call("save_scene", path)
            assert not refused.success and "outside the scene directory" in refused.message, (path, refused.message)
        assert sorted(p.name for p in outside.iterdir()) == outside_before
        assert not (tmp_path / "stolen.ply").exists()

        foreign = call("save_scene", "settings")
        assert not foreign.success and "not written by langscene" in foreign.message, foreign.message
        assert settings.read_text() == '{"arm": {"max_speed": 0.5}}' and not (scenes / "settings.ply").exists()
        assert node.poll() is None
    finally:
        client.close()
