"""Text relevancy of language features (DESIGN.md 2.8, LERF / LangSplat): the one definition of the formula.

relevancy(f, q) = min_i softmax(TEMPERATURE * [cos(f, q), cos(f, n_i)])[0] over the negatives n_i (the
canonical phrases ``query.negatives``: object, things, stuff, texture, plus a request's own)
= sigmoid(:func:`relevancy_logits`), the logit TEMPERATURE * (cos(f, q) - max_i cos(f, n_i)).

The query path scores the K decoded LQC codes once with :func:`relevancy` and gathers each Gaussian's
value by its code index (``langscene_core.query.answer.scene_relevancy``): O(K + N) instead of decoding
N features, the same numbers. Training (``langscene_core.training.tiny_clip``) calibrates CLIP against
:func:`relevancy_logits`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

TEMPERATURE = 10.0  # LERF's softmax scale between a query and a negative


def negative_phrases(canonical: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """Canonical negatives followed by a request's extra negatives, without duplicates or blanks."""
    phrases: list[str] = []
    for phrase in (*canonical, *extra):
        phrase = phrase.strip()
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    if not phrases:
        raise ValueError("relevancy needs at least one negative phrase")
    return phrases


def relevancy_logits(
    query_cosines: torch.Tensor, negative_cosines: torch.Tensor, temperature: float = TEMPERATURE
) -> torch.Tensor:
    """The relevancy formula before its sigmoid: ``temperature * (cos(f, q) - max_i cos(f, n_i))``.

    The softmax over a pair [q, n_i] is sigmoid(t (cos q - cos n_i)), and the smallest over the negatives
    is the one against the closest negative. query_cosines: [N, Q] cosines of N features with Q queries;
    negative_cosines: [N, K] with the K >= 1 negatives. Returns [N, Q] logits (relevancy = sigmoid).
    """
    return temperature * (query_cosines - negative_cosines.max(dim=-1, keepdim=True).values)


def relevancy(
    features: torch.Tensor,
    query: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float = TEMPERATURE,
    chunk: int = 262144,
    unit_features: bool = False,
) -> torch.Tensor:
    """Relevancy of features to a query against negatives.

    features: [N, D] float (need not be unit; cosines are taken, unless ``unit_features`` says they
    are unit already: the LQC code table, scored on every query). query: [D] text embedding.
    negatives: [K, D] text embeddings, K >= 1. Returns [N] float32 in (0, 1).
    """
    if features.ndim != 2 or query.ndim != 1 or negatives.ndim != 2:
        raise ValueError(
            f"expected features [N, D], query [D], negatives [K, D]; got "
            f"{tuple(features.shape)}, {tuple(query.shape)}, {tuple(negatives.shape)}"
        )
    if not features.shape[1] == query.shape[0] == negatives.shape[1] or negatives.shape[0] == 0:
        raise ValueError(
            f"feature widths differ or no negatives: features {tuple(features.shape)}, "
            f"query {tuple(query.shape)}, negatives {tuple(negatives.shape)}"
        )
    texts = F.normalize(torch.cat([query[None], negatives]).float(), dim=-1).to(features.device)
    out = []
    for start in range(0, features.shape[0], chunk):
        rows = features[start : start + chunk].float()
        cos = (rows if unit_features else F.normalize(rows, dim=-1)) @ texts.T  # [n, 1 + K]
        out.append(torch.sigmoid(relevancy_logits(cos[:, :1], cos[:, 1:], temperature))[:, 0])
    return torch.cat(out) if out else torch.zeros(0, device=features.device)
