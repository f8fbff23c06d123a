"""Shared pieces of the language tests: a tiny random OpenCLIP model and synthetic inputs (no downloads)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from langscene_core.config import ClipModelConfig, LqcModelConfig, LqcTrainConfig, ModelsConfig
from langscene_core.language.clip import ClipModel, build_clip, encode_text, save_clip
from langscene_core.language.lqc import save_lqc, train_lqc

# Same code path as ViT-B-16 (open_clip.CLIP with a VisionTransformer and a text Transformer), tiny widths.
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def tiny_clip(seed: int = 0) -> ClipModel:
    return build_clip(TINY_CLIP_CONFIG, device="cpu", seed=seed)


def tiny_models_config(directory) -> ModelsConfig:
    """Write a tiny random CLIP and an LQC trained briefly on its text embeddings of colour x shape
    phrases into ``directory``; returns the ModelsConfig that loads them like real models."""
    clip = tiny_clip()
    save_clip(clip, directory / "clip", TINY_CLIP_CONFIG)
    words = [f"{c} {s}" for c in ("red", "blue", "green", "gray", "white") for s in ("box", "ball", "table", "mug")]
    texts = encode_text(clip, words)
    generator = torch.Generator().manual_seed(0)
    corpus = F.normalize(
        texts.repeat(20, 1) + 0.05 * torch.randn(20 * len(words), texts.shape[1], generator=generator), dim=-1
    )
    lqc_config = LqcTrainConfig(
        feature_dim=TINY_CLIP_CONFIG["embed_dim"], codebook_size=64, hidden_dims=(32,), steps=60, batch_size=128
    )
    save_lqc(train_lqc(corpus, texts, lqc_config).model, directory / "lqc.safetensors")
    return ModelsConfig(
        device="cpu",
        clip=ClipModelConfig(weights=str(directory / "clip")),
        lqc=LqcModelConfig(checkpoint=str(directory / "lqc.safetensors")),
    )


def tabletop_image(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """[120, 160, 3] float RGB: gray wall, brown table, a red disc and a blue box, light noise; and the
    objects' boolean masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:120, :160]
    image = np.empty((120, 160, 3))
    image[:] = (0.5, 0.5, 0.5)
    image[yy > 80] = (0.45, 0.3, 0.15)
    objects = {"disc": (yy - 50) ** 2 + (xx - 50) ** 2 < 20**2, "box": (abs(yy - 60) < 15) & (abs(xx - 115) < 20)}
    image[objects["disc"]] = (0.85, 0.1, 0.1)
    image[objects["box"]] = (0.1, 0.2, 0.85)
    return np.clip(image + rng.normal(0.0, 0.02, image.shape), 0.0, 1.0), objects


def clustered_corpus(n: int, centres: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """[n, D] unit features: a random centre (rows of centres [C, D]) plus isotropic noise of total norm ~noise."""
    picks = torch.randint(0, centres.shape[0], (n,), generator=generator)
    dim = centres.shape[1]
    return F.normalize(centres[picks] + noise * torch.randn(n, dim, generator=generator) / dim**0.5, dim=-1)
