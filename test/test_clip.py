"""CLIP wrapper: unit embeddings, batching, offline loading paths and their errors."""

import json

import open_clip
import pytest
import torch
from language_helpers import TINY_CLIP_CONFIG, tiny_clip

from langscene_core import assets
from langscene_core.language.clip import CONFIG_FILE, WEIGHTS_FILE, encode_images, encode_text, load_clip, save_clip


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


def test_image_features_are_unit_and_batch_independent(clip):
    images = torch.rand(5, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    features = encode_images(clip, images, batch_size=2)
    assert features.shape == (5, TINY_CLIP_CONFIG["embed_dim"])
    assert torch.allclose(features.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(features, encode_images(clip, images, batch_size=5), atol=1e-5)
    # different images give different features (the encoder is not ignoring its input)
    assert (features[0] @ features[1]) < 0.9999
    as_uint8 = (images * 255).round().to(torch.uint8)
    assert torch.allclose(encode_images(clip, as_uint8), features, atol=2e-2)


def test_text_features_are_unit_and_distinct(clip):
    texts = ["a red mug", "a blue box", "table", "a red mug"]
    features = encode_text(clip, texts, batch_size=3)
    assert features.shape == (4, TINY_CLIP_CONFIG["embed_dim"])
    assert torch.allclose(features.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(features[0], features[3], atol=1e-6)
    assert features[0] @ features[1] < 0.9999


def test_bad_inputs_raise(clip):
    with pytest.raises(ValueError, match="images must be"):
        encode_images(clip, torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="list of strings"):
        encode_text(clip, "a red mug")


def test_save_and_load_bundled_and_directory(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "ASSETS_DIR", tmp_path)
    directory = save_clip(clip, tmp_path / "tiny-test", TINY_CLIP_CONFIG)
    assert (directory / CONFIG_FILE).is_file() and (directory / WEIGHTS_FILE).is_file()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for weights in ("bundled:tiny-test", str(directory)):
        loaded = load_clip("ViT-B-16", weights, "cpu")  # the directory's own config wins over arch
        assert loaded.image_size == clip.image_size and loaded.mean == clip.mean
        assert torch.allclose(encode_images(loaded, images), encode_images(clip, images), atol=1e-5)
        assert torch.allclose(encode_text(loaded, ["mug"]), encode_text(clip, ["mug"]), atol=1e-5)


def test_checkpoint_file_for_a_registered_architecture(clip, tmp_path):
    # open_clip's registry holds the architectures; register two tiny ones under test-only names
    wide = {**TINY_CLIP_CONFIG, "embed_dim": 48}
    (tmp_path / "LS-Tiny-Test.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    (tmp_path / "LS-Tiny-Wide-Test.json").write_text(json.dumps(wide))
    open_clip.add_model_config(tmp_path / "LS-Tiny-Test.json")
    open_clip.add_model_config(tmp_path / "LS-Tiny-Wide-Test.json")
    save_clip(clip, tmp_path / "model", TINY_CLIP_CONFIG)
    weights = str(tmp_path / "model" / WEIGHTS_FILE)
    loaded = load_clip("LS-Tiny-Test", weights)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(encode_images(loaded, images), encode_images(clip, images), atol=1e-5)
    other = tiny_clip(seed=1)  # a different random model really gives other features
    assert not torch.allclose(encode_images(other, images), encode_images(clip, images), atol=1e-3)
    with pytest.raises(ValueError, match="does not fit architecture"):
        load_clip("LS-Tiny-Wide-Test", weights)


def test_missing_weights_never_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        load_clip("ViT-B-16", "laion2b_s34b_b88k")
    with pytest.raises(FileNotFoundError, match="no bundled model bundled:no-such-model: the bundled models are "):
        load_clip("ViT-B-16", "bundled:no-such-model")
    with pytest.raises(FileNotFoundError, match="has no open_clip_config.json"):
        load_clip("ViT-B-16", "bundled:tiny-lqc")  # a bundled model, not a CLIP one
    with pytest.raises(ValueError, match="not a file, a bundled:NAME model or a pretrained tag"):
        load_clip("ViT-B-16", "no-such-tag")
    with pytest.raises(ValueError, match="unknown CLIP architecture"):
        load_clip("ViT-Nope", "openai")
