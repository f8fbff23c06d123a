"""The models a node holds for its whole life: CLIP, the LQC (with its decoded code table), the mask
mapper and, when densification is on, the TriMap pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from langscene_core.config import DensifyConfig, ModelsConfig
from langscene_core.errors import ModelError
from langscene_core.language.clip import ClipModel, load_clip, load_vocabulary, resolve_device
from langscene_core.language.lqc import LQC, load_lqc
from langscene_core.language.masks import MaskMapper, make_mask_mapper


@dataclass(frozen=True, eq=False)
class Models:
    """Loaded models.

    code_features: [K, D] float32 unit CLIP-space features of the K LQC codes (decoded once; a query
    scores these K rows and gathers per Gaussian). trimap: a TrimapPipeline or None.
    vocabulary: the descriptions the CLIP model tells objects apart by (``clip.load_vocabulary``; the
    rivals of the query's open-set check), possibly empty.
    """

    clip: ClipModel
    lqc: LQC
    code_features: torch.Tensor
    masks: MaskMapper
    trimap: object | None
    device: torch.device
    config: ModelsConfig
    vocabulary: tuple[str, ...] = ()


def load_models(config: ModelsConfig, densify: DensifyConfig) -> Models:
    """Load every model named by ``config`` (ModelNotFoundError / ModelError say which one and why)."""
    device = resolve_device(config.device)
    clip = load_clip(config.clip.arch, config.clip.weights, device)
    lqc = load_lqc(config.lqc.checkpoint, device)
    if lqc.config.feature_dim != clip.dim:
        raise ModelError(
            f"LQC {config.lqc.checkpoint!r} compresses {lqc.config.feature_dim}-d features but CLIP "
            f"{config.clip.weights!r} gives {clip.dim}-d ones: use an LQC trained on that CLIP"
        )
    trimap = None
    if densify.mode != "off":
        from langscene_core.trimap.loading import load_trimap  # diffusers only when densification is on

        trimap = load_trimap(config.trimap, device)
    return Models(
        clip=clip,
        lqc=lqc,
        code_features=lqc.code_features(),
        masks=make_mask_mapper(config.masks),
        trimap=trimap,
        device=device,
        config=config,
        vocabulary=load_vocabulary(config.clip.weights, config.clip.vocabulary),
    )
