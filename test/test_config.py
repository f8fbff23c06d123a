import dataclasses

import pytest

from langscene_core.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    GraspConfig,
    LangsceneConfig,
    check_limits,
    describe_settings,
    flatten,
    from_dict,
    load_config,
    to_dict,
    unflatten,
)


def params_file(tmp_path, body: str):
    path = tmp_path / "p.yaml"
    path.write_text("langscene:\n  ros__parameters:\n" + body)
    return path


def test_shipped_yaml_matches_the_dataclass_defaults():
    """config/langscene.yaml lists every setting, with the dataclasses' defaults."""
    assert load_config(DEFAULT_CONFIG_PATH) == LangsceneConfig()
    assert set(flatten(to_dict(load_config(DEFAULT_CONFIG_PATH)))) == set(flatten(to_dict(LangsceneConfig())))
    # DESIGN 3: a robot's camera pose comes from its transform tree unless a pose topic is asked for
    assert load_config(DEFAULT_CONFIG_PATH).node.pose_source == "tf"


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="field.geometry_stepz"):
        load_config(params_file(tmp_path, "    field:\n      geometry_stepz: 3\n"))


@pytest.mark.parametrize("key", ["node.auto_reconstruct", "models.masks.checkpoint"])
def test_removed_keys_are_unknown(key):
    """Settings nothing read are gone: a parameter file still naming one is refused, not ignored."""
    with pytest.raises(ConfigError, match=f"unknown setting '{key}'"):
        from_dict(LangsceneConfig, unflatten({key: "x"}))


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="grasp.gripper_max_width"):
        from_dict(LangsceneConfig, {"grasp": {"gripper_max_width": "wide"}})
    with pytest.raises(ConfigError, match="models.trimap.vae_tiling"):
        from_dict(LangsceneConfig, {"models": {"trimap": {"vae_tiling": 1}}})


def test_option_typo_names_key_value_and_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"densify.mode: 'trimapp' is not one of: off, trimap, auto$"):
        load_config(params_file(tmp_path, "    densify:\n      mode: trimapp\n"))
    with pytest.raises(
        ConfigError, match=r"node.qos.camera.reliability: 'sensor_data' is not one of: best_effort, reliable$"
    ):
        load_config(
            params_file(tmp_path, "    node:\n      qos:\n        camera:\n          reliability: sensor_data\n")
        )
    # the setting node.qos.camera.reliability replaced: the error says what to write instead
    with pytest.raises(
        ConfigError, match=r"unknown setting 'node.camera_qos'; replaced by node.qos.camera.reliability"
    ):
        load_config(params_file(tmp_path, "    node:\n      camera_qos: reliable\n"))
    # YAML reads an unquoted off as false: the error says so
    with pytest.raises(ConfigError, match="densify.mode: False .*quote it"):
        load_config(params_file(tmp_path, "    densify:\n      mode: off\n"))
    assert load_config(params_file(tmp_path, "    densify:\n      mode: trimap\n")).densify.mode == "trimap"


def test_out_of_range_values_are_refused_with_the_range():
    cases = {
        "query.relevancy_threshold": (1.5, r"expected \[0, 1\]"),
        "grasp.gripper_max_width": (0.0, "expected > 0"),
        "keyframe.max_keyframes": (0, "expected >= 1"),
        "models.trimap.strength": (0.0, r"expected \(0, 1\]"),
        "models.masks.merge_thresholds": ([0.1, -0.2], "expected each item >= 0"),
    }
    for key, (value, limits) in cases.items():
        with pytest.raises(ConfigError, match=f"^{key}: .* is out of range: {limits}$"):
            from_dict(LangsceneConfig, unflatten({key: value}))
    # a config built in code is checked the same way (the planner checks its GraspConfig so)
    with pytest.raises(ConfigError, match=r"^grasp.friction_coefficient: 0.0 is out of range: expected > 0$"):
        check_limits(dataclasses.replace(GraspConfig(), friction_coefficient=0.0), "grasp.")
    check_limits(LangsceneConfig())  # the defaults lie in their ranges
    # the bounds themselves are in range
    config = from_dict(LangsceneConfig, {"query": {"relevancy_threshold": 1.0}, "keyframe": {"max_keyframes": 1}})
    assert config.query.relevancy_threshold == 1.0 and config.keyframe.max_keyframes == 1


def test_every_setting_is_described_and_option_sets_are_literals():
    """Each leaf has a description (the ROS parameter's); closed option sets list their choices."""
    infos = describe_settings()
    assert set(infos) == set(flatten(to_dict(LangsceneConfig())))
    assert [name for name, info in infos.items() if not info.help.strip()] == []
    choices = {name: info.choices for name, info in infos.items() if info.choices}
    assert choices == {
        **{f"node.qos.{group}.reliability": ("best_effort", "reliable") for group in ("camera", "pose")},
        **{
            f"node.qos.{group}.durability": ("volatile", "transient_local")
            for group in ("scene_cloud", "markers", "relevancy_cloud")
        },
        "node.pose_source": ("tf", "topic"),
        "node.image_transport": ("raw", "compressed"),
        "node.depth_transport": ("raw", "compressedDepth"),
        "models.device": ("auto", "cpu", "cuda"),
        "models.trimap.dtype": ("auto", "float32", "float16", "bfloat16"),
        "models.trimap.offload": ("none", "model", "sequential"),
        "models.masks.mapper": ("felzenszwalb", "depth", "sam2"),
        "densify.mode": ("off", "trimap", "auto"),
        "query.box_alignment": ("gravity", "free"),
    }
    assert infos["query.relevancy_threshold"].bounds == (0.0, 1.0)


def test_flatten_unflatten_round_trip_and_int_to_float():
    nested = to_dict(LangsceneConfig())
    assert unflatten(flatten(nested)) == nested
    config = from_dict(LangsceneConfig, {"grasp": {"gripper_max_width": 1}, "query": {"negatives": ["a", "b"]}})
    assert config.grasp.gripper_max_width == 1.0 and isinstance(config.grasp.gripper_max_width, float)
    assert config.query.negatives == ("a", "b")
    assert dataclasses.replace(config.query, negatives=("a", "b")) == config.query
