"""Text prompt -> per-Gaussian relevancy of a scene, through the LQC code table (DESIGN.md 2.8).

Each Gaussian holds one LQC code per mask level. The prompt and the negatives are embedded once, the
relevancy of all K codes is computed once per level, and each Gaussian gathers its code's value:
O(K + N) per query instead of decoding N 512-d features. As in LangSplat, the level whose maximum
relevancy is highest answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from langscene_core.clip import encode_text
from langscene_core.models import Models
from langscene_core.relevancy import negative_phrases, relevancy


@dataclass(frozen=True)
class SceneRelevancy:
    """values: [N] float32 relevancy per Gaussian in (0, 1); level: the mask level that answered."""

    values: np.ndarray
    level: int


def scene_relevancy(codes: np.ndarray, models: Models, prompt: str, canonical_negatives: Sequence[str],
                    extra_negatives: Sequence[str] = ()) -> SceneRelevancy:
    """codes: [N, L] int64 LQC code of each Gaussian per level. Raises ValueError on an empty prompt."""
    if not prompt.strip():
        raise ValueError("empty prompt")
    negatives = [n for n in negative_phrases(canonical_negatives, extra_negatives) if n != prompt.strip()]
    texts = encode_text(models.clip, [prompt.strip(), *negatives]).to(models.code_features.device)
    per_code = relevancy(models.code_features, texts[0], texts[1:])  # [K]
    table = per_code.cpu().numpy()
    per_level = table[codes]  # [N, L]
    if per_level.size == 0:
        return SceneRelevancy(values=np.zeros(0, np.float32), level=0)
    level = int(np.argmax(per_level.max(axis=0)))
    return SceneRelevancy(values=per_level[:, level].astype(np.float32), level=level)
