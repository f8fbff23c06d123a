#!/usr/bin/env python3
"""Train ``bundled:tiny-lqc`` (K=2048 codes, D=3) on tiny-clip features and write it to
langscene_core/assets/tiny-lqc/lqc.safetensors.

Renders random scenes (training and held-out seeds) once into ``--cache``, computes the pipeline's mask
features with ``--clip`` (s/m/l masks of the ``--config``'s mapper, one CLIP feature per mask) plus the features of every
object's whole mask (``--object-copies`` copies of them join the corpus: see below), trains the LQC with
``langscene_core.language.lqc.train_lqc`` (settings ``models.lqc_train`` of the config, text-activation loss over
the world's caption vocabulary and the canonical negatives), reports on the held-out scenes the
reconstruction cosine and, name by name, how often the right object name keeps LERF relevancy > 0.5
through the round trip (``langscene_core.language.lqc.name_round_trip``), and writes ``training.json`` next to
the checkpoint. Seeded. ``--evaluate-only CHECKPOINT`` measures an existing compressor the same way.

Whole-object masks: felzenszwalb splits shaded objects (a cylinder's side and top) into pieces, so the
features a name query must match, those of whole objects, are rare in a corpus of its masks alone; the
paper's mapper (SAM2) gives whole objects and its LQC is trained on COCO, where they abound.

    scripts/train_tiny_lqc.py --cache /work/cache/tiny-lqc
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from langscene_core.config import DEFAULT_CONFIG_PATH, load_config, to_dict  # noqa: E402
from langscene_core.language.clip import encode_text, load_clip  # noqa: E402
from langscene_core.language.lqc import (  # noqa: E402
    CHECKPOINT_FILE,
    LQC,
    load_lqc,
    name_round_trip,
    reconstruction_metrics,
    save_lqc,
    train_lqc,
)
from langscene_core.language.masks import make_mask_mapper  # noqa: E402
from langscene_core.sim import SHAPES  # noqa: E402
from langscene_core.training.crops import ViewSet, render_views  # noqa: E402
from langscene_core.training.lqc_corpus import (  # noqa: E402
    LabelledFeatures,
    labelled_mask_corpus,
    object_features,
    view_masks,
)
from langscene_core.training.lqc_ranking import text_ranking_loss  # noqa: E402
from langscene_core.training.tiny_clip import CANONICAL_NEGATIVES  # noqa: E402
from langscene_core.training.vocabulary import (  # noqa: E402
    COLOR_TEMPLATES,
    SUBJECT_COLORS,
    SUBJECT_SHAPES,
    name_captions,
    subject_combos,
)

EVAL_SEED_OFFSET = 2_000_000  # held-out scenes use seeds far from the training ones
OBJECT_MIN_PIXELS = 25  # training: whole-object masks at least this large (crops.MIN_PIXELS)
EVAL_MIN_PIXELS = 80  # per-name check: objects at least this visible (as tiny-clip's evaluation)
WORST = 10  # names listed in the per-name report


def vocabulary_texts(shape_copies: int = 1) -> list[str]:
    """Every object and table name (held-out combinations included), shape (``shape_copies`` times: a
    text listed k times weighs k times in Eq. 5's sum), colour and negative."""
    names = list(name_captions(subject_combos(include_held_out=True)).texts)
    return (
        names
        + list(SUBJECT_SHAPES) * shape_copies
        + [COLOR_TEMPLATES[0].format(color=c) for c in SUBJECT_COLORS]
        + list(CANONICAL_NEGATIVES)
    )


def object_names() -> list[str]:
    """Every colour x shape object name, row ``color * len(SHAPES) + shape``."""
    return [f"{c} {s}" for c in SUBJECT_COLORS for s in SHAPES]


def ranking_term(clip, weight: float, temperature: float):
    """The text-ranking term over three groups of rivals, each with the canonical negatives: the shape
    words, the colour prompts ("something red"), the object names; None when weight is 0."""
    if weight == 0:
        return None
    negatives = list(CANONICAL_NEGATIVES)
    groups = [
        list(SUBJECT_SHAPES) + negatives,
        [COLOR_TEMPLATES[0].format(color=c) for c in SUBJECT_COLORS] + negatives,
        object_names() + negatives,
    ]
    return text_ranking_loss([encode_text(clip, g).cpu() for g in groups], temperature, weight)


def cached(path: Path, build: Callable[[], LabelledFeatures]) -> LabelledFeatures:
    if path.is_file():
        return LabelledFeatures(**torch.load(path))
    corpus = build()
    torch.save(dataclasses.asdict(corpus), path)
    return corpus


def cached_views(path: Path, seeds: range, views: int) -> ViewSet:
    if path.is_file():
        return ViewSet.load(path)
    rendered = render_views(seeds, views, exclude_held_out=False)
    rendered.save(path)
    return rendered


def cached_masks(path: Path, views: ViewSet, mapper) -> list[np.ndarray]:
    """The mapper's masks of every view (``lqc_corpus.view_masks``), cached: they do not depend on the CLIP."""
    if path.is_file():
        with np.load(path) as data:
            return list(data["masks"])
    masks = view_masks(views, mapper)
    np.savez_compressed(path, masks=np.stack(masks).astype(np.int32))
    return masks


def name_report(model: LQC, data: LabelledFeatures, names: torch.Tensor, negatives: torch.Tensor) -> dict:
    """Per-name round trip of the object features of ``data`` (see ``name_round_trip``), summarised:
    overall fractions (CLIP alone, round trip), names below 50 % and the WORST names."""
    objects = data.subset(data.objects)
    result = name_round_trip(model, objects.features, objects.color * len(SHAPES) + objects.shape, names, negatives)
    seen = torch.nonzero(result.count).flatten()
    order = seen[result.round_trip[seen].argsort()]
    labels = object_names()
    clip, round_trip = result.overall()
    return {
        "features": len(objects),
        "names": len(seen),
        "clip": round(clip, 4),
        "round_trip": round(round_trip, 4),
        "names_below_half": int((result.round_trip[seen] < 0.5).sum()),
        "worst": [
            [labels[t], int(result.count[t]), round(float(result.clip[t]), 3), round(float(result.round_trip[t]), 3)]
            for t in order[:WORST].tolist()
        ],
        "worst_columns": ["name", "features", "clip", "round_trip"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="directory for rendered views and feature corpora")
    parser.add_argument("--out", type=Path, default=REPO / "langscene_core/assets/tiny-lqc" / CHECKPOINT_FILE)
    parser.add_argument("--clip", default="bundled:tiny-clip", help="CLIP weights whose features are compressed")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--train-scenes", type=int, default=100)
    parser.add_argument("--eval-scenes", type=int, default=60)
    parser.add_argument("--views", type=int, default=4, help="random views per scene")
    parser.add_argument(
        "--object-copies",
        type=int,
        default=4,
        help="copies of the training views' whole-object mask features added to the corpus",
    )
    parser.add_argument("--steps", type=int, default=None, help="default models.lqc_train.steps")
    parser.add_argument(
        "--evaluate-only",
        default=None,
        metavar="CHECKPOINT",
        help="measure this compressor on the held-out scenes instead of training one",
    )
    parser.add_argument(
        "--mappers",
        default=None,
        help="comma-separated mask mappers whose s/m/l masks form the corpus (default: the config's models.masks)",
    )
    parser.add_argument(
        "--first-scene", type=int, default=None, help="first training scene seed (default: --seed x 100,000)"
    )
    parser.add_argument(
        "--shape-text-copies",
        type=int,
        default=1,
        help="copies of the shape-only texts in the text-activation loss (Eq. 5 weight of shape prompts)",
    )
    parser.add_argument(
        "--rank-weight",
        type=float,
        default=0.0,
        help="weight of the text-ranking term (langscene_core.training.lqc_ranking; 0: the paper's losses only)",
    )
    parser.add_argument("--rank-temperature", type=float, default=50.0, help="softmax temperature of the ranking term")
    parser.add_argument(
        "--masks-only",
        action="store_true",
        help="render the views and cache the mappers' masks, then stop (no CLIP needed: run it while the CLIP trains)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.object_copies < 0:
        parser.error("--object-copies must be >= 0")
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    train_config = dataclasses.replace(
        config.models.lqc_train, seed=args.seed, steps=args.steps or config.models.lqc_train.steps
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    mapper_names = args.mappers.split(",") if args.mappers else [config.models.masks.mapper]
    mappers = {m: make_mask_mapper(dataclasses.replace(config.models.masks, mapper=m)) for m in mapper_names}

    start = time.perf_counter()
    # masks do not depend on the CLIP: cached per views file, mapper and config (its models.masks)
    eval_file = args.cache / f"eval_views_n{args.eval_scenes}_v{args.views}.npz"
    eval_views = cached_views(eval_file, range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + args.eval_scenes), args.views)

    def eval_masks(m: str) -> list[np.ndarray]:
        return cached_masks(eval_file.with_suffix(f".{m}_{args.config.stem}.npz"), eval_views, mappers[m])

    first = args.seed * 100_000 if args.first_scene is None else args.first_scene
    if args.evaluate_only is None:
        train_file = args.cache / f"train_views_f{first}_n{args.train_scenes}_v{args.views}.npz"
        train_views = cached_views(train_file, range(first, first + args.train_scenes), args.views)

        def train_view_masks(m: str) -> list[np.ndarray]:
            return cached_masks(train_file.with_suffix(f".{m}_{args.config.stem}.npz"), train_views, mappers[m])

    if args.masks_only:
        for m in mapper_names:
            eval_masks(m)
            if args.evaluate_only is None:
                train_view_masks(m)
        print(json.dumps({"masks_s": round(time.perf_counter() - start, 1)}), flush=True)
        return 0

    clip = load_clip(config.models.clip.arch, args.clip, "cpu")
    clip_tag = args.clip.replace(":", "-").replace("/", "_")
    tags = {m: f"{clip_tag}_{m}_v{args.views}" for m in mapper_names}
    tag = tags[mapper_names[0]]  # object features do not depend on the mapper: cached under the first one's tag
    held_out_by_mapper = {
        m: cached(
            args.cache / f"eval_masks_n{args.eval_scenes}_{tags[m]}.pt",
            lambda m=m: labelled_mask_corpus(clip, eval_views, mappers[m], eval_masks(m)),
        )
        for m in mapper_names
    }
    held_out = LabelledFeatures.cat(list(held_out_by_mapper.values()))
    held_out_objects = cached(
        args.cache / f"eval_objects_n{args.eval_scenes}_{tag}.pt",
        lambda: object_features(clip, eval_views, EVAL_MIN_PIXELS),
    )
    if args.evaluate_only is None:
        train_masks = LabelledFeatures.cat(
            [
                cached(
                    args.cache / f"train_masks_f{first}_n{args.train_scenes}_{tags[m]}.pt",
                    lambda m=m: labelled_mask_corpus(clip, train_views, mappers[m], train_view_masks(m)),
                )
                for m in mapper_names
            ]
        )
        train_objects = cached(
            args.cache / f"train_objects_f{first}_n{args.train_scenes}_{tag}.pt",
            lambda: object_features(clip, train_views, OBJECT_MIN_PIXELS),
        )
        train = torch.cat([train_masks.features] + [train_objects.features] * args.object_copies)
    corpus_s = time.perf_counter() - start
    texts = encode_text(clip, vocabulary_texts(args.shape_text_copies)).cpu()
    names = encode_text(clip, object_names()).cpu()
    negatives = encode_text(clip, list(CANONICAL_NEGATIVES)).cpu()

    train_s, restarted = 0.0, 0
    if args.evaluate_only is None:
        print(
            json.dumps(
                {"train_features": len(train), "held_out_features": len(held_out), "corpus_s": round(corpus_s, 1)}
            ),
            flush=True,
        )
        start = time.perf_counter()
        result = train_lqc(
            train,
            texts,
            train_config,
            progress=lambda step, losses: print(json.dumps({"step": step, **losses}), flush=True),
            extra_loss=ranking_term(clip, args.rank_weight, args.rank_temperature),
        )
        train_s, restarted = time.perf_counter() - start, result.restarted
        save_lqc(result.model, args.out)
    model = load_lqc(args.out if args.evaluate_only is None else args.evaluate_only)  # evaluate what ships
    metrics = {
        "held_out": reconstruction_metrics(model, held_out.features, texts),
        "codes_used_held_out": int(model.code_of(model.encode(held_out.features)).unique().numel()),
        "names_objects": name_report(model, held_out_objects, names, negatives),
        "names_masks": name_report(model, held_out, names, negatives),
    }
    if len(mapper_names) > 1:
        metrics["by_mapper"] = {
            m: {
                "held_out": reconstruction_metrics(model, part.features, texts),
                "names_masks": name_report(model, part, names, negatives),
            }
            for m, part in held_out_by_mapper.items()
        }
    if args.evaluate_only is None:
        metrics["train"] = reconstruction_metrics(model, train_masks.features[:20000], texts)
    record = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "threads": args.threads,
        "clip": args.clip,
        "metrics": metrics,
        "data": {
            "eval_scenes": args.eval_scenes,
            "views_per_scene": args.views,
            "held_out_features": len(held_out),
            "held_out_objects": len(held_out_objects),
            "masks": to_dict(config.models.masks),
            "mappers": mapper_names,
            "texts": len(texts),
            "shape_text_copies": args.shape_text_copies,
            "rank_weight": args.rank_weight,
            "rank_temperature": args.rank_temperature,
        },
        "seconds": {"corpus_s": round(corpus_s, 1), "train_s": round(train_s, 1)},
    }
    if args.evaluate_only is None:
        record["train"] = to_dict(train_config)
        record["data"].update(
            train_scenes=args.train_scenes,
            train_first_scene=first,
            train_mask_features=len(train_masks),
            train_object_features=len(train_objects),
            object_copies=args.object_copies,
            train_features=len(train),
        )
        record["codes_restarted"] = restarted
        (args.out.parent / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"metrics": metrics}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
