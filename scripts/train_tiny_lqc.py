#!/usr/bin/env python3
"""Train ``bundled:tiny-lqc`` (K=2048 codes, D=3) on tiny-clip features and write it to
langscene_core/assets/tiny-lqc/lqc.safetensors.

Renders random scenes (training and held-out seeds) once into ``--cache``, computes the pipeline's mask
features with ``--clip`` (s/m/l felzenszwalb masks, one CLIP feature per mask), trains the LQC with
``langscene_core.lqc.train_lqc`` (settings ``models.lqc_train`` of the config, text-activation loss over
the world's caption vocabulary and the canonical negatives), reports reconstruction cosine on the
held-out scenes, and writes ``training.json`` next to the checkpoint. Seeded.

    scripts/train_tiny_lqc.py --cache /work/cache/tiny-lqc
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from langscene_core.clip import encode_text, load_clip  # noqa: E402
from langscene_core.config import DEFAULT_CONFIG_PATH, load_config, to_dict  # noqa: E402
from langscene_core.lqc import CHECKPOINT_FILE, load_lqc, reconstruction_metrics, save_lqc, train_lqc  # noqa: E402
from langscene_core.masks import make_mask_mapper  # noqa: E402
from langscene_core.training.crops import render_views  # noqa: E402
from langscene_core.training.lqc_corpus import mask_feature_corpus  # noqa: E402
from langscene_core.training.tiny_clip import CANONICAL_NEGATIVES  # noqa: E402
from langscene_core.training.vocabulary import (COLOR_TEMPLATES, SUBJECT_COLORS, SUBJECT_SHAPES,  # noqa: E402
                                                name_captions, subject_combos)

EVAL_SEED_OFFSET = 2_000_000  # held-out scenes use seeds far from the training ones


def vocabulary_texts() -> list[str]:
    """Every object and table name (held-out combinations included), shape, colour and negative."""
    names = list(name_captions(subject_combos(include_held_out=True)).texts)
    return names + list(SUBJECT_SHAPES) + [COLOR_TEMPLATES[0].format(color=c) for c in SUBJECT_COLORS] \
        + list(CANONICAL_NEGATIVES)


def cached_corpus(path: Path, clip, seeds: range, views: int, mapper) -> torch.Tensor:
    if path.is_file():
        return torch.load(path)
    corpus = mask_feature_corpus(clip, render_views(seeds, views, exclude_held_out=False), mapper)
    torch.save(corpus, path)
    return corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="directory for the feature corpora")
    parser.add_argument("--out", type=Path, default=REPO / "langscene_core/assets/tiny-lqc" / CHECKPOINT_FILE)
    parser.add_argument("--clip", default="bundled:tiny-clip", help="CLIP weights whose features are compressed")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--train-scenes", type=int, default=100)
    parser.add_argument("--eval-scenes", type=int, default=20)
    parser.add_argument("--views", type=int, default=4, help="random views per scene")
    parser.add_argument("--steps", type=int, default=None, help="default models.lqc_train.steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    train_config = dataclasses.replace(config.models.lqc_train, seed=args.seed,
                                       steps=args.steps or config.models.lqc_train.steps)
    args.cache.mkdir(parents=True, exist_ok=True)
    clip = load_clip(config.models.clip.arch, args.clip, "cpu")
    mapper = make_mask_mapper(config.models.masks)

    start = time.perf_counter()
    tag = f"{args.clip.replace(':', '-').replace('/', '_')}_v{args.views}"
    train = cached_corpus(args.cache / f"train_s{args.seed}_n{args.train_scenes}_{tag}.pt", clip,
                          range(args.seed * 100_000, args.seed * 100_000 + args.train_scenes), args.views, mapper)
    held_out = cached_corpus(args.cache / f"eval_n{args.eval_scenes}_{tag}.pt", clip,
                             range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + args.eval_scenes), args.views, mapper)
    corpus_s = time.perf_counter() - start
    texts = encode_text(clip, vocabulary_texts()).cpu()
    print(json.dumps({"train_features": len(train), "held_out_features": len(held_out), "corpus_s": round(corpus_s, 1)}),
          flush=True)

    start = time.perf_counter()
    result = train_lqc(train, texts, train_config,
                       progress=lambda step, losses: print(json.dumps({"step": step, **losses}), flush=True))
    train_s = time.perf_counter() - start
    save_lqc(result.model, args.out)
    model = load_lqc(args.out)  # evaluate exactly what ships
    metrics = {"held_out": reconstruction_metrics(model, held_out, texts),
               "train": reconstruction_metrics(model, train[:20000], texts),
               "codes_used_held_out": int(model.code_of(model.encode(held_out)).unique().numel())}
    record = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "threads": args.threads,
              "clip": args.clip, "train": to_dict(train_config),
              "data": {"train_scenes": args.train_scenes, "eval_scenes": args.eval_scenes, "views_per_scene": args.views,
                       "train_features": len(train), "held_out_features": len(held_out),
                       "masks": to_dict(config.models.masks), "texts": len(texts)},
              "seconds": {"corpus_s": round(corpus_s, 1), "train_s": round(train_s, 1)},
              "codes_restarted": result.restarted, "metrics": metrics}
    (args.out.parent / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"metrics": metrics}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
