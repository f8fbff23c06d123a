"""Text relevancy of language features (DESIGN.md 2.8, LERF / LangSplat).

relevancy(f, q) = min_i softmax(temperature * [cos(f, q), cos(f, n_i)])[0] over the negatives n_i:
the canonical phrases (``query.negatives``: object, things, stuff, texture) plus a request's own.

Two paths give the same numbers: :func:`relevancy` on decoded per-Gaussian features (N x 512), and
:func:`code_relevancy`: relevancy once per LQC code (K), gathered per Gaussian by its code index,
O(K + N) instead of decoding N features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

TEMPERATURE = 10.0


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
        # softmax over the pair [q, n_i]: exp(t*q) / (exp(t*q) + exp(t*n_i)) = sigmoid(t * (q - n_i))
        pair = torch.sigmoid(temperature * (cos[:, :1] - cos[:, 1:]))
        out.append(pair.min(dim=1).values)
    return torch.cat(out) if out else torch.zeros(0, device=features.device)


def code_relevancy(
    code_features: torch.Tensor,
    codes: torch.Tensor,
    query: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float = TEMPERATURE,
) -> torch.Tensor:
    """Per-Gaussian relevancy through the LQC code table: relevancy of each of the K codes once, then
    gathered by each Gaussian's code index. Equals :func:`relevancy` of the decoded latents.

    code_features: [K, D] the decoded codebook (``LQC.code_features()``). codes: [N] int64 code indices
    (``LQC.code_of`` of the Gaussians' latents). query: [D]; negatives: [K_neg, D]. Returns [N] float32.
    """
    if codes.dtype not in (torch.int64, torch.int32) or codes.ndim != 1:
        raise ValueError(f"codes must be [N] integer code indices, got {codes.dtype} {tuple(codes.shape)}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= code_features.shape[0]):
        raise ValueError(f"code indices must be in 0..{code_features.shape[0] - 1}")
    table = relevancy(code_features, query, negatives, temperature)
    return table[codes.to(table.device)]
