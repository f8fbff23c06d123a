"""Feature corpus for the bundled LQC: CLIP features of the pipeline's own masks on rendered views.

Every view goes through the same steps as a reconstruction (DESIGN.md 2.3-2.4): s/m/l masks from the
configured mask mapper, one CLIP feature per mask (``langscene_core.features.mask_features``), so the
compressor is trained on the distribution it will compress.
"""
from __future__ import annotations

import torch

from langscene_core.clip import ClipModel
from langscene_core.features import mask_features
from langscene_core.masks import MaskMapper
from langscene_core.training.crops import ViewSet


def mask_feature_corpus(clip: ClipModel, views: ViewSet, mapper: MaskMapper) -> torch.Tensor:
    """[N, D] float32 unit CLIP features of every mask of every level of every view (CPU)."""
    tables = [mask_features(clip, views.rgb[v], mapper(views.rgb[v])).table for v in range(len(views))]
    if not tables:
        raise ValueError("no views to build a feature corpus from")
    return torch.cat(tables)
