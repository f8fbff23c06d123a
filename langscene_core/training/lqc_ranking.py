"""A text-ranking term for training the LQC (beyond the paper's Eq. 3-6).

Eq. 5 keeps every text's cosine, each text weighing the same; what a query needs is that, among the
texts of one kind (the shapes, the colours, the names) and the canonical negatives, the decoded feature
prefers the texts the original feature prefers. :func:`text_ranking_loss` is the KL divergence from
the softmax of the original feature's text cosines to the decoded one's, per group of texts, at a
CLIP-like temperature. A 3-d latent cannot keep every direction of the 512-d space; the term tells
the compressor which ones the queries read. Pass it to ``train_lqc(..., extra_loss=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def text_ranking_loss(
    groups: Sequence[torch.Tensor], temperature: float, weight: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """groups: G tensors [T_g, F] of unit text embeddings (each a set of rival texts, e.g. the shape
    words plus the canonical negatives). Returns ``loss(x, x_hat)`` for x, x_hat [B, F]: weight x the
    sum over groups of the batch mean KL(softmax(t x T_g^T) || softmax(t x_hat T_g^T)), t = temperature."""
    if temperature <= 0 or weight < 0 or not groups:
        raise ValueError(f"need groups, temperature > 0 and weight >= 0, got {len(groups)}, {temperature}, {weight}")
    groups = [F.normalize(g.float(), dim=-1) for g in groups]

    def loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(())
        for texts in groups:
            texts = texts.to(x.device)
            target = F.log_softmax(temperature * x.detach() @ texts.T, dim=1)
            decoded = F.log_softmax(temperature * x_hat @ texts.T, dim=1)
            total = total + F.kl_div(decoded, target, log_target=True, reduction="batchmean")
        return weight * total

    return loss
