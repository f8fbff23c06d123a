"""Text prompt -> per-Gaussian relevancy of a scene, through the LQC code table (DESIGN.md 2.8).

Each Gaussian holds one LQC code per mask level. The prompt and the negatives are embedded once (or
taken from a :class:`TextEmbeddingCache`: the canonical negatives repeat in every query), the
relevancy of all K codes is computed once, and each Gaussian gathers its code's value: O(K + N) per
query instead of decoding N 512-d features. One level answers (:func:`answer_level`): the large level
(whole objects) unless a smaller one's maximum relevancy is higher by more than ``query.level_margin``
(0: LangSplat's rule, the highest maximum); the level maxima come from the codes each level uses (found
once per scene by :func:`code_levels`), so only that level's N values are gathered.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from langscene_core.language.clip import ClipModel, encode_text
from langscene_core.language.relevancy import negative_phrases, relevancy
from langscene_core.query.objects import QueryResult
from langscene_core.reconstruction.models import Models


class TextEmbeddingCache:
    """Bounded LRU of one CLIP model's text embeddings: phrase -> [D] float32 unit vector.

    Owned by whoever holds the model (the engine, one per loaded model); safe to use from several threads.
    """

    def __init__(self, clip: ClipModel, capacity: int = 256):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.clip = clip
        self.capacity = capacity
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """[T, D] embeddings of ``texts`` on the model's device; only phrases not cached are encoded."""
        with self._lock:
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


def prompt_relevancy(
    features: torch.Tensor,
    models: Models,
    prompt: str,
    canonical_negatives: Sequence[str],
    extra_negatives: Sequence[str] = (),
    cache: TextEmbeddingCache | None = None,
    unit_features: bool = False,
) -> np.ndarray:
    """[K] float32 relevancy of ``prompt`` (against the negatives) for K CLIP features [K, D] (the LQC
    code table, or one frame's mask features; ``unit_features``: they are unit vectors already, as
    the code table's are). cache: text embeddings of ``models.clip`` to reuse (None: encode every
    phrase). Raises ValueError on an empty prompt or a cache of another model."""
    if not prompt.strip():
        raise ValueError("empty prompt")
    negatives = [n for n in negative_phrases(canonical_negatives, extra_negatives) if n != prompt.strip()]
    texts = _embed(models, [prompt.strip(), *negatives], cache).to(features.device)
    with torch.inference_mode():
        return relevancy(features, texts[0], texts[1:], unit_features=unit_features).cpu().numpy()


def _embed(models: Models, phrases: Sequence[str], cache: TextEmbeddingCache | None) -> torch.Tensor:
    """[T, D] unit text embeddings of ``phrases`` by ``models.clip``, through ``cache`` when given."""
    if cache is None:
        with torch.inference_mode():
            return encode_text(models.clip, list(phrases))
    if cache.clip is not models.clip:
        raise ValueError("the text embedding cache belongs to another CLIP model")
    return cache.embed(phrases)


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


def scene_relevancy(
    codes: np.ndarray | CodeLevels,
    models: Models,
    prompt: str,
    canonical_negatives: Sequence[str],
    extra_negatives: Sequence[str] = (),
    cache: TextEmbeddingCache | None = None,
    *,
    level_margin: float,
) -> SceneRelevancy:
    """codes: [N, L] int64 LQC code of each Gaussian per level, or the same arranged once per scene
    (:func:`code_levels`: saves a pass over every level per query); level_margin: ``query.level_margin``
    (:func:`answer_level`); the rest as :func:`prompt_relevancy`."""
    table = prompt_relevancy(
        models.code_features, models, prompt, canonical_negatives, extra_negatives, cache, unit_features=True
    )  # [K]
    levels = codes if isinstance(codes, CodeLevels) else code_levels(codes)
    if levels.codes.size == 0:
        return SceneRelevancy(values=np.zeros(0, np.float32), level=0)
    level = answer_level(np.array([table[used].max() for used in levels.used]), level_margin)
    return SceneRelevancy(values=table[levels.codes[level]].astype(np.float32, copy=False), level=level)


def answer_level(maxima: np.ndarray, level_margin: float) -> int:
    """The mask level that answers a prompt: the largest level (whole objects, the last), unless a
    smaller level's highest relevancy beats the largest level's by more than ``level_margin``; then
    the smaller level with the highest maximum. maxima: [L] float, each level's highest relevancy
    (levels small to large). ``level_margin`` 0 is LangSplat's rule (the level with the highest
    maximum, the largest level on a tie); >= 1 always the largest level.

    Why not LangSplat's rule alone: on small levels a piece of an object (a mug's side, a cylinder's
    top) reaches a higher relevancy for a shape word than the whole object does on the large level,
    at a piece of the wrong object as often as not (``bench/shape_stages.py``: auto vs l)."""
    maxima = np.asarray(maxima, dtype=np.float64)
    if maxima.ndim != 1 or maxima.size == 0:
        raise ValueError(f"maxima must be [L] with L >= 1, got shape {maxima.shape}")
    smaller = int(np.argmax(maxima[:-1])) if maxima.size > 1 else -1
    if smaller >= 0 and maxima[smaller] > maxima[-1] + level_margin:
        return smaller
    return maxima.size - 1


def check_rivals(
    result: QueryResult,
    codes: CodeLevels,
    models: Models,
    prompt: str,
    max_margin: float,
    cache: TextEmbeddingCache | None = None,
) -> QueryResult:
    """Open-set check of an answer (``query.rival_margin``): is the object what the prompt names, or
    does an entry of the CLIP vocabulary (``models.vocabulary``) describe it far better?

    The object's language feature is the mean code feature of its Gaussians over every mask level. The
    answer stands when no vocabulary entry's cosine with it exceeds the prompt's by more than
    ``max_margin`` (or when there is no object or no vocabulary); otherwise the result loses its object
    grasps and alternatives, keeps its relevancy cloud, and its message names the entry. The canonical-negative
    relevancy alone cannot tell "blue cone" from the blue ball it half matches; comparing names can.
    """
    rivals = [text for text in models.vocabulary if text != prompt.strip()]
    if result.object_box is None or not rivals:
        return result
    start = time.perf_counter()
    # how often each code occurs among the members: a [K] x [K, D] product instead of gathering L x M rows
    counts = np.bincount(codes.codes[:, result.object_indices].reshape(-1), minlength=len(models.code_features))
    with torch.inference_mode():
        weights = torch.from_numpy(counts.astype(np.float32)).to(models.code_features.device)
        feature = F.normalize(weights @ models.code_features.float(), dim=0)
        cosines = (_embed(models, [prompt.strip(), *rivals], cache).to(feature.device).float() @ feature).cpu().numpy()
    best = int(np.argmax(cosines[1:]))
    margin = float(cosines[1 + best] - cosines[0])
    timings = {**result.timings, "rivals": time.perf_counter() - start}
    if margin <= max_margin:
        return replace(result, timings=timings)
    message = (
        f"{len(result.cloud)} relevant points but no object: the best cluster is '{rivals[best]}' rather than "
        f"'{prompt.strip()}' (cosine {cosines[1 + best]:.2f} vs {cosines[0]:.2f}, a margin above "
        f"query.rival_margin {max_margin:.2f})"
    )
    return replace(
        result,
        object_box=None,
        object_indices=np.zeros(0, dtype=np.int64),
        grasps=(),
        message=message,
        timings=timings,
        object_score=0.0,
        alternatives=(),
    )
