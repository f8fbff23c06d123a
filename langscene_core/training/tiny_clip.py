"""Contrastive training and retrieval evaluation of ``bundled:tiny-clip``, a small open_clip CLIP.

Objective, per training crop (a rendered object, table or background region, see :mod:`crops`):

* contrastive image-to-text cross-entropy over the whole caption vocabulary of each group (full names,
  shapes, colours; :mod:`vocabulary`) with the canonical query negatives ("object", "things", "stuff",
  "texture") as extra columns that are never the answer, so the right caption outranks both the other
  captions and the negatives; the temperature is CLIP's learned ``logit_scale``;
* relevancy calibration: the query path's LERF/LangSplat relevancy (the sigmoid of
  :func:`langscene_core.language.relevancy.relevancy_logits`) of every caption t against the negatives
  n, with binary cross-entropy towards "t describes the crop" (positives and non-matching captions
  averaged separately); background crops match no caption;
* optionally (``confusable_weight``) the same binary cross-entropy once more over the *confusable* names
  alone (:meth:`vocabulary.Captions.confusable`: same colour and other shape, or same shape and other
  colour), so that a query for an absent "blue mug" stays below relevancy 0.5 on the blue bowl.

With ``include_held_out`` False the held-out colour x shape combinations (:data:`vocabulary.HELD_OUT`)
are neither rendered nor captioned in training, to measure compositional generalisation;
:func:`retrieval_accuracy` reports them apart from the other ones either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from langscene_core.config import QueryConfig
from langscene_core.language.clip import ClipModel
from langscene_core.language.relevancy import relevancy_logits
from langscene_core.training.crops import (
    PARTIAL_FRACTION,
    ViewSet,
    masked_crop,
    random_crop,
    subject_of,
    visible_instances,
)
from langscene_core.training.vocabulary import (
    HELD_OUT,
    SHAPES,
    SUBJECT_COLORS,
    SUBJECT_SHAPES,
    Captions,
    name_captions,
    sample_captions,
)

#: open_clip model config of tiny-clip: 48x48 ViT with 12x12 patches (16 tokens: rendered objects are
#: 20-40 px wide at 160x120, and 2 shared cores allow no more), short-context text transformer using
#: open_clip's BPE tokenizer, 512-d joint space like ViT-B-16 so downstream widths stay the same.
TINY_CLIP_CONFIG = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 48, "patch_size": 12, "width": 96, "layers": 4, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 3},
}
CANONICAL_NEGATIVES: tuple[str, ...] = QueryConfig().negatives


@dataclass(frozen=True)
class CropBank:
    """Encoder-ready training crops. images: [N, 3, S, S] uint8 RGB. color, shape: [N] int64 subject
    indices (SUBJECT_COLORS / SUBJECT_SHAPES), -1 for background crops."""

    images: torch.Tensor
    color: torch.Tensor
    shape: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass(frozen=True)
class TinyClipTrainConfig:
    steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.02
    warmup_steps: int = 100  # linear warm-up, then cosine decay to zero
    relevancy_weight: float = 1.0
    confusable_weight: float = 0.0  # extra relevancy BCE over confusable names (module docstring)
    include_held_out: bool = False  # caption the HELD_OUT combinations too (render them: crops.render_views)
    seed: int = 0


def build_crop_bank(
    views: ViewSet, crops_per_instance: int, size: int, seed: int, partial_fraction: float = PARTIAL_FRACTION
) -> CropBank:
    """``crops_per_instance`` augmented crops (:func:`crops.random_crop`) of every visible instance,
    ``partial_fraction`` of the mask crops cut to a partial mask."""
    if crops_per_instance < 1:
        raise ValueError(f"crops_per_instance must be >= 1, got {crops_per_instance}")
    rng = np.random.default_rng(seed)
    images, colors, shapes = [], [], []
    for view, instance in visible_instances(views):
        color, shape = subject_of(views, int(view), int(instance))
        for _ in range(crops_per_instance):
            images.append(
                (random_crop(views, int(view), int(instance), size, rng, partial_fraction) * 255)
                .round()
                .to(torch.uint8)
            )
            colors.append(color)
            shapes.append(shape)
    return CropBank(torch.stack(images), torch.tensor(colors), torch.tensor(shapes))


def _normalise(clip: ClipModel, images: torch.Tensor) -> torch.Tensor:
    """[B, 3, S, S] uint8 -> the encoder's normalised float input (crops are already at its size)."""
    mean = torch.tensor(clip.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(clip.std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def _image_features(clip: ClipModel, images: torch.Tensor) -> torch.Tensor:
    return F.normalize(clip.model.encode_image(_normalise(clip, images)), dim=-1)


def _text_features(clip: ClipModel, texts: Sequence[str]) -> torch.Tensor:
    return F.normalize(clip.model.encode_text(clip.tokenizer(list(texts)).to(clip.device)), dim=-1)


def clip_losses(
    clip: ClipModel,
    images: torch.Tensor,
    color: torch.Tensor,
    shape: torch.Tensor,
    groups: Sequence[Captions],
    relevancy_weight: float = 1.0,
    confusable_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Training losses of one batch (module docstring), with gradients.

    images: [B, 3, S, S] uint8 crops; color, shape: [B] int64 subject indices (-1 background);
    groups: caption groups (names, shapes, colours). Returns {"contrastive", "relevancy", "confusable",
    "total"} with total = contrastive + relevancy_weight * relevancy + confusable_weight * confusable.
    """
    image = _image_features(clip, images)
    texts = [t for g in groups for t in g.texts]
    text = _text_features(clip, texts + list(CANONICAL_NEGATIVES))
    captions, negatives = text[: len(texts)], text[len(texts) :]
    scale = clip.model.logit_scale.exp().clamp(max=100.0)
    cos_captions, cos_negatives = image @ captions.T, image @ negatives.T
    matches = torch.from_numpy(np.concatenate([g.matches(color.numpy(), shape.numpy()) for g in groups], axis=1))
    confusable = torch.from_numpy(np.concatenate([g.confusable(color.numpy(), shape.numpy()) for g in groups], axis=1))
    contrastive, start = [], 0
    for g in groups:
        match = matches[:, start : start + len(g.texts)]
        rows = match.any(1)
        if rows.any():
            logits = scale * torch.cat([cos_captions[:, start : start + len(g.texts)], cos_negatives], 1)
            contrastive.append(F.cross_entropy(logits[rows], match[rows].float().argmax(1)))
        start += len(g.texts)
    bce = F.binary_cross_entropy_with_logits(
        relevancy_logits(cos_captions, cos_negatives), matches.float(), reduction="none"
    )
    relevancy = bce[matches].mean() + bce[~matches].mean() if matches.any() else bce.mean()
    confusable_loss = bce[confusable].mean() if confusable.any() else image.sum() * 0.0
    contrastive_loss = torch.stack(contrastive).mean() if contrastive else image.sum() * 0.0
    return {
        "contrastive": contrastive_loss,
        "relevancy": relevancy,
        "confusable": confusable_loss,
        "total": contrastive_loss + relevancy_weight * relevancy + confusable_weight * confusable_loss,
    }


def _learning_rate(config: TinyClipTrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_tiny_clip(
    clip: ClipModel,
    bank: CropBank,
    config: TinyClipTrainConfig,
    log: Callable[[dict], None] | None = None,
    log_every: int = 50,
) -> list[dict[str, float]]:
    """Train ``clip.model`` in place on ``bank`` (batches drawn with replacement, random left-right
    flips, a fresh caption template draw per step). Returns the per-step losses; calls ``log`` with
    {"step", "seconds", losses...} every ``log_every`` steps. Leaves the model in eval mode."""
    if len(bank) == 0:
        raise ValueError("empty crop bank")
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    optimizer = torch.optim.AdamW(clip.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    clip.model.train()
    history, start = [], time.perf_counter()
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step)
        index = torch.randint(len(bank), (config.batch_size,), generator=generator)
        images = bank.images[index]
        flip = torch.rand(config.batch_size, generator=generator) < 0.5
        images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        losses = clip_losses(
            clip,
            images,
            bank.color[index],
            bank.shape[index],
            sample_captions(rng, config.include_held_out),
            config.relevancy_weight,
            config.confusable_weight,
        )
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
        if log is not None and (step % log_every == 0 or step == config.steps - 1):
            log({"step": step, "seconds": round(time.perf_counter() - start, 1), **history[-1]})
    clip.model.eval()
    return history


@dataclass(frozen=True)
class RetrievalSet:
    """Pipeline-style masked crops of objects in held-out scenes. images: [N, 3, S, S] float32 0..1;
    color, shape: [N] int64 subject indices; view: [N] int64 view of each crop; names: per view, the
    names of the objects in its scene."""

    images: torch.Tensor
    color: torch.Tensor
    shape: torch.Tensor
    view: torch.Tensor
    names: tuple[tuple[str, ...], ...]


def retrieval_set(views: ViewSet, size: int, min_pixels: int) -> RetrievalSet:
    """Every object (not table, not background) covering at least ``min_pixels`` pixels of a view, as
    the pipeline crops masks (:func:`crops.masked_crop`)."""
    images, colors, shapes, index = [], [], [], []
    for view, instance in visible_instances(views, min_pixels):
        if instance <= 0:
            continue
        image = views.rgb[view].astype(np.float32) / 255.0
        images.append(masked_crop(image, views.ids[view] == instance, size))
        color, shape = subject_of(views, int(view), int(instance))
        colors.append(color)
        shapes.append(shape)
        index.append(int(view))
    names = tuple(
        tuple(
            f"{SUBJECT_COLORS[c]} {SUBJECT_SHAPES[s]}"
            for c, s in zip(views.color[v], views.shape[v])
            if c >= 0 and SUBJECT_SHAPES[s] in SHAPES
        )
        for v in range(len(views))
    )
    return RetrievalSet(torch.stack(images), torch.tensor(colors), torch.tensor(shapes), torch.tensor(index), names)


@torch.no_grad()
def retrieval_accuracy(clip: ClipModel, data: RetrievalSet) -> dict[str, float]:
    """Zero-shot top-1 retrieval of object names ("red mug") for the crops of ``data``.

    Candidates are all colour x shape object names (held-out ones included). Returns accuracy over all
    names for crops of seen and of held-out combinations ("seen_top1", "held_out_top1", with counts),
    accuracy among the names of the crop's own scene ("in_scene_top1"), the fraction of crops whose
    right name scores above every canonical negative ("above_negatives"), and, over all (crop, name)
    pairs where the name has the crop's colour and another shape ("other_shape_below_half") or its shape
    and another colour ("other_color_below_half"), the fraction whose LERF relevancy (canonical
    negatives, :func:`~langscene_core.language.relevancy.relevancy_logits`) is below 0.5: a query for an absent object is rejected.
    """
    combos = [(c, s) for c in SUBJECT_COLORS for s in SHAPES]
    captions = name_captions(combos)
    text = _text_features(clip, captions.texts)
    negatives = _text_features(clip, CANONICAL_NEGATIVES)
    image = torch.cat(
        [
            _image_features(clip, (data.images[i : i + 256] * 255).round().to(torch.uint8))
            for i in range(0, len(data.images), 256)
        ]
    )
    scores = image @ text.T
    truth = torch.from_numpy(captions.matches(data.color.numpy(), data.shape.numpy())).float().argmax(1)
    correct = scores.argmax(1) == truth
    held_out = torch.tensor(
        [(SUBJECT_COLORS[c], SUBJECT_SHAPES[s]) in HELD_OUT for c, s in zip(data.color.tolist(), data.shape.tolist())]
    )
    in_scene = []
    for i, view in enumerate(data.view.tolist()):
        allowed = [captions.texts.index(n) for n in data.names[view]]
        in_scene.append(allowed[int(scores[i, allowed].argmax())] == int(truth[i]))
    true_score = scores.gather(1, truth[:, None])[:, 0]
    negative_scores = image @ negatives.T
    above = true_score > negative_scores.max(1).values
    below_half = torch.sigmoid(relevancy_logits(scores, negative_scores)) < 0.5
    confusable = torch.from_numpy(captions.confusable(data.color.numpy(), data.shape.numpy()))
    same_color = torch.from_numpy(captions.color[None] == data.color.numpy()[:, None])
    return {
        "seen_top1": float(correct[~held_out].float().mean()) if (~held_out).any() else float("nan"),
        "seen_count": int((~held_out).sum()),
        "held_out_top1": float(correct[held_out].float().mean()) if held_out.any() else float("nan"),
        "held_out_count": int(held_out.sum()),
        "in_scene_top1": float(np.mean(in_scene)),
        "above_negatives": float(above.float().mean()),
        "other_shape_below_half": float(below_half[confusable & same_color].float().mean()),
        "other_color_below_half": float(below_half[confusable & ~same_color].float().mean()),
    }
