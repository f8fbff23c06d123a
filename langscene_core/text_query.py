"""Text prompt -> per-Gaussian relevancy of a scene, through the LQC code table (DESIGN.md 2.8).

Each Gaussian holds one LQC code per mask level. The prompt and the negatives are embedded once (or
taken from a :class:`TextEmbeddingCache`: the canonical negatives repeat in every query), the
relevancy of all K codes is computed once, and each Gaussian gathers its code's value: O(K + N) per
query instead of decoding N 512-d features. As in LangSplat, the level whose maximum relevancy is
highest answers; the level maxima come from the codes each level uses (found once per scene by
:func:`code_levels`), so only that level's N values are gathered.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from langscene_core.clip import ClipModel, encode_text
from langscene_core.models import Models
from langscene_core.relevancy import negative_phrases, relevancy


class TextEmbeddingCache:
    """Bounded LRU of one CLIP model's text embeddings: phrase -> [D] float32 unit vector.

    Owned by whoever holds the model (e.g. the node, one per loaded model); not shared state.
    """

    def __init__(self, clip: ClipModel, capacity: int = 256):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.clip = clip
        self.capacity = capacity
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """[T, D] embeddings of ``texts`` on the model's device; only phrases not cached are encoded."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._items]
        if missing:
            with torch.inference_mode():
                for text, vector in zip(missing, encode_text(self.clip, missing)):
                    self._items[text] = vector.clone()
        for text in texts:
            self._items.move_to_end(text)
        rows = torch.stack([self._items[t] for t in texts])
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return rows


@dataclass(frozen=True)
class SceneRelevancy:
    """values: [N] float32 relevancy per Gaussian in (0, 1); level: the mask level that answered."""

    values: np.ndarray
    level: int


def prompt_relevancy(features: torch.Tensor, models: Models, prompt: str, canonical_negatives: Sequence[str],
                     extra_negatives: Sequence[str] = (), cache: TextEmbeddingCache | None = None,
                     unit_features: bool = False) -> np.ndarray:
    """[K] float32 relevancy of ``prompt`` (against the negatives) for K CLIP features [K, D] (the LQC
    code table, or one frame's mask features; ``unit_features``: they are unit vectors already, as
    the code table's are). cache: text embeddings of ``models.clip`` to reuse (None: encode every
    phrase). Raises ValueError on an empty prompt or a cache of another model."""
    if not prompt.strip():
        raise ValueError("empty prompt")
    if cache is not None and cache.clip is not models.clip:
        raise ValueError("the text embedding cache belongs to another CLIP model")
    negatives = [n for n in negative_phrases(canonical_negatives, extra_negatives) if n != prompt.strip()]
    phrases = [prompt.strip(), *negatives]
    if cache is None:
        with torch.inference_mode():
            texts = encode_text(models.clip, phrases)
    else:
        texts = cache.embed(phrases)
    texts = texts.to(features.device)
    with torch.inference_mode():
        return relevancy(features, texts[0], texts[1:], unit_features=unit_features).cpu().numpy()


@dataclass(frozen=True)
class CodeLevels:
    """A scene's LQC codes arranged for queries: a property of the scene, computed once
    (:func:`code_levels`) and passed to every :func:`scene_relevancy` on it.

    codes: [L, N] int64 code of every Gaussian per mask level (one contiguous row per level).
    used: L arrays [U_l] int64, the distinct codes level l uses.
    """

    codes: np.ndarray
    used: tuple[np.ndarray, ...]


def code_levels(codes: np.ndarray) -> CodeLevels:
    """codes: [N, L] non-negative int LQC code of each Gaussian per level (``Scene.codes``)."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be [N, L], got shape {codes.shape}")
    levels = np.ascontiguousarray(codes.T, dtype=np.int64)
    if levels.size and levels.min() < 0:
        raise ValueError(f"codes must be non-negative, got {levels.min()}")
    return CodeLevels(codes=levels, used=tuple(np.flatnonzero(np.bincount(row)) for row in levels))


def scene_relevancy(codes: np.ndarray | CodeLevels, models: Models, prompt: str, canonical_negatives: Sequence[str],
                    extra_negatives: Sequence[str] = (), cache: TextEmbeddingCache | None = None) -> SceneRelevancy:
    """codes: [N, L] int64 LQC code of each Gaussian per level, or the same arranged once per scene
    (:func:`code_levels`: saves a pass over every level per query); the rest as :func:`prompt_relevancy`."""
    table = prompt_relevancy(models.code_features, models, prompt, canonical_negatives, extra_negatives, cache,
                             unit_features=True)  # [K]
    levels = codes if isinstance(codes, CodeLevels) else code_levels(codes)
    if levels.codes.size == 0:
        return SceneRelevancy(values=np.zeros(0, np.float32), level=0)
    level = int(np.argmax([table[used].max() for used in levels.used]))
    return SceneRelevancy(values=table[levels.codes[level]].astype(np.float32, copy=False), level=level)
