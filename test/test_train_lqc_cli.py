"""`langscene train-lqc`: trains from a feature file, writes a loadable checkpoint; bad input exits 2."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from langscene_core.language.lqc import load_lqc
from langscene_ros.cli import main

SETTINGS = """langscene:
  ros__parameters:
    models:
      device: cpu
      lqc_train: {feature_dim: 32, codebook_size: 64, hidden_dims: [16], batch_size: 64, steps: 1000}
"""


@pytest.fixture
def corpus(tmp_path):
    generator = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(300, 32, generator=generator), dim=1)
    (tmp_path / "settings.yaml").write_text(SETTINGS)
    np.save(tmp_path / "features.npy", features.numpy())
    save_file({"features": features}, str(tmp_path / "features.safetensors"))
    np.save(tmp_path / "texts.npy", features[:8].numpy())
    return tmp_path, features


def test_trains_and_writes_a_checkpoint(corpus, capsys):
    tmp_path, features = corpus
    for source in ("features.npy", "features.safetensors"):
        out = tmp_path / f"lqc-{source}.safetensors"
        code = main(
            [
                "train-lqc",
                "--features",
                str(tmp_path / source),
                "--texts",
                str(tmp_path / "texts.npy"),
                "--out",
                str(out),
                "--steps",
                "30",
                "--config",
                str(tmp_path / "settings.yaml"),
                "--json",
                str(tmp_path / "summary.json"),
            ]
        )
        assert code == 0
        model = load_lqc(out)
        assert model.config.steps == 30 and model.config.codebook_size == 64
        assert model.encode(features[:5]).shape == (5, 3)
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["steps"] == 30 and 0 <= summary["train_metrics"]["text_match"] <= 1
        assert summary["final_losses"]["reconstruction"] < 2.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--features", "missing.npy"], "not found"),
        (["--features", "texts.npy", "--steps", "0"], "--steps must be >= 1"),
        (["--features", "settings.yaml"], "must be .npy or .safetensors"),
        (["--features", "bad.npy"], "float matrix"),
        (["--features", "wide.npy"], "64-d but models.lqc_train.feature_dim is 32"),
        (["--features", "features.npy", "--texts", "wide.npy"], "64-d, features are 32-d"),
    ],
)
def test_bad_input_exits_2_with_one_line(corpus, capsys, args, message):
    tmp_path, _ = corpus
    np.save(tmp_path / "bad.npy", np.zeros(5, dtype=np.float32))
    np.save(tmp_path / "wide.npy", np.zeros((5, 64), dtype=np.float32))
    argv = ["train-lqc", "--out", str(tmp_path / "x.safetensors"), "--config", str(tmp_path / "settings.yaml")]
    argv += [str(tmp_path / a) if a.endswith((".npy", ".yaml")) else a for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("langscene train-lqc:")
    assert not (tmp_path / "x.safetensors").exists()


def test_text_phrases_are_encoded_with_the_configured_clip(corpus, tmp_path):
    from language_helpers import TINY_CLIP_CONFIG, tiny_clip

    from langscene_core.language.clip import save_clip

    save_clip(tiny_clip(), tmp_path / "clip", TINY_CLIP_CONFIG)
    settings = SETTINGS.replace("device: cpu", f"device: cpu\n      clip: {{weights: '{tmp_path / 'clip'}'}}")
    (tmp_path / "clip.yaml").write_text(settings)
    (tmp_path / "texts.txt").write_text("red mug\n\nblue box\n")
    np.save(tmp_path / "f32.npy", F.normalize(torch.randn(100, 32), dim=1).numpy())
    argv = [
        "train-lqc",
        "--features",
        str(tmp_path / "f32.npy"),
        "--texts",
        str(tmp_path / "texts.txt"),
        "--out",
        str(tmp_path / "m.safetensors"),
        "--steps",
        "5",
        "--config",
        str(tmp_path / "clip.yaml"),
    ]
    assert main(argv) == 0 and load_lqc(tmp_path / "m.safetensors").config.feature_dim == 32
    (tmp_path / "missing-clip.yaml").write_text(settings.replace(str(tmp_path / "clip"), "bundled:no-such-clip"))
    argv[-1] = str(tmp_path / "missing-clip.yaml")
    assert main(argv) == 2
