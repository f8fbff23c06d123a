"""Feature corpora for the bundled LQC: CLIP features of the pipeline's own masks on rendered views.

Every view goes through the same steps as a reconstruction (DESIGN.md 2.3-2.4): s/m/l masks from the
configured mask mapper, one CLIP feature per mask (``langscene_core.language.features.mask_features``), so the
compressor is trained on the distribution it will compress.

The rendered world knows what every pixel shows, so each feature can carry the subject it shows
(:class:`LabelledFeatures`): the training script balances the corpus over object names with it and
checks, name by name, that a name survives the compressor's round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from langscene_core.language.clip import ClipModel
from langscene_core.language.features import mask_features
from langscene_core.language.masks import MaskMapper
from langscene_core.sim import TABLE_ID
from langscene_core.training.crops import ViewSet
from langscene_core.training.vocabulary import SUBJECT_SHAPES, TABLE_SHAPE

#: a mask is labelled with the instance covering at least this fraction of its pixels (else -1: mixed)
MIN_PURITY = 0.8


@dataclass(frozen=True)
class LabelledFeatures:
    """CLIP features with the subject each one shows.

    features: [N, F] float32 unit CLIP features. color, shape: [N] int64 indices into
    ``vocabulary.SUBJECT_COLORS`` / ``SUBJECT_SHAPES`` of the instance (object or table) the mask shows,
    -1 where it shows background or mixes instances. objects: [N] bool, the subject is an object (not
    the table, not background, not mixed).
    """

    features: torch.Tensor
    color: torch.Tensor
    shape: torch.Tensor

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def objects(self) -> torch.Tensor:
        return (self.shape >= 0) & (self.shape != SUBJECT_SHAPES.index(TABLE_SHAPE))

    def subset(self, rows: torch.Tensor) -> LabelledFeatures:
        """The rows ``rows`` ([M] int64 indices or [N] bool)."""
        return LabelledFeatures(self.features[rows], self.color[rows], self.shape[rows])

    @staticmethod
    def cat(parts: list[LabelledFeatures]) -> LabelledFeatures:
        if not parts:
            raise ValueError("no views to build a feature corpus from")
        return LabelledFeatures(*(torch.cat([getattr(p, f) for p in parts]) for f in ("features", "color", "shape")))


def _mask_subjects(
    masks: np.ndarray, ids: np.ndarray, color: np.ndarray, shape: np.ndarray, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """(color [rows], shape [rows]) of the instance covering >= MIN_PURITY of each mask.

    masks: [L, H, W] int mask ids per level (-1 none), rows numbered level after level as
    ``mask_features`` numbers them. ids: [H, W] instance ids (-1 background). color, shape: [I] per
    instance id (-1 none)."""
    out_color, out_shape = np.full(rows, -1, np.int64), np.full(rows, -1, np.int64)
    offset = 0
    for labels in masks:
        count = int(labels.max()) + 1
        inside = labels >= 0
        pixels = np.bincount(labels[inside], minlength=count)
        # joint histogram (mask, instance + 1): instance -1 (background) lands in column 0
        joint = np.bincount(
            labels[inside] * (len(color) + 1) + ids[inside] + 1, minlength=count * (len(color) + 1)
        ).reshape(count, len(color) + 1)
        best = joint.argmax(1)
        pure = (joint[np.arange(count), best] >= MIN_PURITY * np.maximum(pixels, 1)) & (best > 0)
        instance = best - 1
        out_color[offset : offset + count] = np.where(pure, color[instance.clip(0)], -1)
        out_shape[offset : offset + count] = np.where(pure, shape[instance.clip(0)], -1)
        offset += count
    return out_color, out_shape


def view_masks(views: ViewSet, mapper: MaskMapper) -> list[np.ndarray]:
    """The mapper's s/m/l masks ([L, H, W] int, -1 none) of every view: the slow half of a corpus, which
    does not depend on the CLIP, so it can be computed (and cached) apart from the features."""
    return [mapper(views.rgb[v], views.depth[v], views.intrinsics(v)) for v in range(len(views))]


def labelled_mask_corpus(
    clip: ClipModel, views: ViewSet, mapper: MaskMapper, masks: list[np.ndarray] | None = None
) -> LabelledFeatures:
    """Features of every mask of every level of every view (CPU), each labelled with the subject that
    covers at least MIN_PURITY of it. ``masks``: the views' masks already computed (:func:`view_masks`)."""
    parts = []
    for v in range(len(views)):
        masks_v = mapper(views.rgb[v], views.depth[v], views.intrinsics(v)) if masks is None else masks[v]
        table = mask_features(clip, views.rgb[v], masks_v).table
        color, shape = _mask_subjects(
            masks_v, views.ids[v].astype(np.int64), views.color[v], views.shape[v], table.shape[0]
        )
        parts.append(LabelledFeatures(table, torch.from_numpy(color), torch.from_numpy(shape)))
    return LabelledFeatures.cat(parts)


def mask_feature_corpus(clip: ClipModel, views: ViewSet, mapper: MaskMapper) -> torch.Tensor:
    """[N, D] float32 unit CLIP features of every mask of every level of every view (CPU)."""
    return labelled_mask_corpus(clip, views, mapper).features


def object_features(clip: ClipModel, views: ViewSet, min_pixels: int) -> LabelledFeatures:
    """Features of every object's true mask (what an ideal mask mapper gives) covering at least
    ``min_pixels`` pixels of its view, encoded as the pipeline encodes a mask (CPU)."""
    parts = []
    for v in range(len(views)):
        ids = views.ids[v].astype(np.int64)
        present = np.flatnonzero(np.bincount(ids[ids > TABLE_ID], minlength=views.color.shape[1]) >= min_pixels)
        if len(present) == 0:
            continue
        labels = np.full(ids.shape, -1)
        for row, k in enumerate(present):
            labels[ids == k] = row
        table = mask_features(clip, views.rgb[v], labels[None]).table
        parts.append(
            LabelledFeatures(
                table, torch.from_numpy(views.color[v, present]), torch.from_numpy(views.shape[v, present])
            )
        )
    return LabelledFeatures.cat(parts)
