import dataclasses

import pytest

from langscene_core.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    LangsceneConfig,
    flatten,
    from_dict,
    load_config,
    to_dict,
    unflatten,
)


def test_shipped_yaml_matches_the_dataclass_defaults():
    """config/langscene.yaml lists every setting, with the dataclasses' defaults."""
    assert load_config(DEFAULT_CONFIG_PATH) == LangsceneConfig()
    assert set(flatten(to_dict(load_config(DEFAULT_CONFIG_PATH)))) == set(flatten(to_dict(LangsceneConfig())))


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("langscene:\n  ros__parameters:\n    field:\n      geometry_stepz: 3\n")
    with pytest.raises(ConfigError, match="field.geometry_stepz"):
        load_config(path)


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="grasp.gripper_max_width"):
        from_dict(LangsceneConfig, {"grasp": {"gripper_max_width": "wide"}})
    with pytest.raises(ConfigError, match="node.auto_reconstruct"):
        from_dict(LangsceneConfig, {"node": {"auto_reconstruct": 1}})


def test_flatten_unflatten_round_trip_and_int_to_float():
    nested = to_dict(LangsceneConfig())
    assert unflatten(flatten(nested)) == nested
    config = from_dict(LangsceneConfig, {"grasp": {"gripper_max_width": 1}, "query": {"negatives": ["a", "b"]}})
    assert config.grasp.gripper_max_width == 1.0 and isinstance(config.grasp.gripper_max_width, float)
    assert config.query.negatives == ("a", "b")
    assert dataclasses.replace(config.query, negatives=("a", "b")) == config.query
