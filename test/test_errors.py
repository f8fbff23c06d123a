"""The exception family (langscene_core.errors): errors raised on real paths are LangsceneErrors and
keep the builtin type their callers caught before; the old import places name the same classes."""

import pytest

from langscene_core import errors
from langscene_core.config import LangsceneConfig, from_dict
from langscene_core.language.lqc import load_lqc
from langscene_core.sim import parse_spec


def test_config_and_spec_errors_are_langscene_errors_and_value_errors():
    with pytest.raises(errors.LangsceneError, match="grasp.gripper_max_width") as info:
        from_dict(LangsceneConfig, {"grasp": {"gripper_max_width": "wide"}})
    assert isinstance(info.value, errors.ConfigError) and isinstance(info.value, ValueError)
    with pytest.raises(errors.LangsceneError) as info:
        parse_spec({"objects": "none"})
    assert isinstance(info.value, errors.SpecError) and isinstance(info.value, ValueError)


def test_a_missing_model_is_a_model_not_found_error_and_a_file_not_found_error(tmp_path):
    with pytest.raises(errors.ModelNotFoundError) as info:
        load_lqc(tmp_path / "nothing.safetensors")
    assert isinstance(info.value, FileNotFoundError)
    (tmp_path / "other.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(errors.ModelError, match="not a langscene LQC checkpoint"):
        load_lqc(tmp_path / "other.safetensors")


def test_one_definition_per_class():
    from langscene_core.config import ConfigError
    from langscene_core.reconstruction.reconstruct import ReconstructionError
    from langscene_core.reconstruction.scene import SceneFileError
    from langscene_core.sim.spec import SpecError
    from langscene_core.trimap.poses import PoseRecoveryError

    assert ConfigError is errors.ConfigError and SpecError is errors.SpecError
    assert SceneFileError is errors.SceneFileError and ReconstructionError is errors.ReconstructionError
    assert PoseRecoveryError is errors.PoseRecoveryError
