"""The one bundled:NAME resolver (langscene_core.assets) that CLIP, LQC and TriMap loading share."""

from pathlib import Path

import pytest

from langscene_core.assets import ASSETS_DIR, bundled_models, resolve
from langscene_core.errors import ModelNotFoundError


def test_bundled_names_and_paths():
    assert {"tiny-clip", "tiny-lqc", "tiny-trimap"} <= set(bundled_models())
    assert resolve("bundled:tiny-lqc") == ASSETS_DIR / "tiny-lqc" and (ASSETS_DIR / "tiny-lqc").is_dir()
    assert resolve("~/models/clip.bin") == Path.home() / "models" / "clip.bin"
    assert resolve("laion2b_s34b_b88k") == Path("laion2b_s34b_b88k")  # a tag: the caller decides


@pytest.mark.parametrize("name", ["bundled:tiny-lqcc", "bundled:../assets/tiny-lqc", "bundled:", "bundled:__pycache__"])
def test_an_unknown_bundled_model_names_the_bundled_ones(name):
    with pytest.raises(ModelNotFoundError, match="the bundled models are bundled:tiny-clip, bundled:tiny-lqc"):
        resolve(name)
