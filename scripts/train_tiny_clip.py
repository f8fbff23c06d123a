#!/usr/bin/env python3
"""Train ``bundled:tiny-clip`` on the synthetic world and write it to langscene_core/assets/tiny-clip.

Renders random training scenes (held-out colour x shape combinations removed, unless
``--include-held-out``: the shipped model is trained on all combinations, the held-out variant measures
compositional generalisation) and held-out evaluation scenes once into ``--cache``, builds the augmented
crop bank (cached too), trains contrastively (langscene_core.training.tiny_clip), reports zero-shot name
retrieval on the held-out scenes, saves the model in open_clip's local-dir layout (float16 weights) plus
``training.json`` (command, settings, durations, metrics). Seeded: the same arguments give the same model on the same machine.

    scripts/train_tiny_clip.py --cache /work/cache/tiny-clip                      # held-out variant
    scripts/train_tiny_clip.py --cache /work/cache/tiny-clip --include-held-out   # all combinations
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

from langscene_core.language.clip import build_clip, load_clip, save_clip, save_vocabulary  # noqa: E402
from langscene_core.training.crops import PARTIAL_FRACTION, ViewSet, render_views  # noqa: E402
from langscene_core.training.tiny_clip import (  # noqa: E402
    TINY_CLIP_CONFIG,
    CropBank,
    TinyClipTrainConfig,
    build_crop_bank,
    retrieval_accuracy,
    retrieval_set,
    train_tiny_clip,
)
from langscene_core.training.vocabulary import name_captions, subject_combos  # noqa: E402

EVAL_SEED_OFFSET = 1_000_000  # evaluation scenes use seeds far from the training ones
EVAL_MIN_PIXELS = 80  # objects smaller than this in a view are not scored


def cached_views(path: Path, seeds: range, views: int, exclude_held_out: bool) -> ViewSet:
    if path.is_file():
        return ViewSet.load(path)
    rendered = render_views(seeds, views, exclude_held_out)
    rendered.save(path)
    return rendered


def cached_bank(path: Path, views: ViewSet, crops: int, size: int, seed: int, partial_fraction: float) -> CropBank:
    if path.is_file():
        return CropBank(**torch.load(path))
    bank = build_crop_bank(views, crops, size, seed, partial_fraction)
    torch.save(dataclasses.asdict(bank), path)
    return bank


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="directory for rendered views and crops")
    parser.add_argument("--out", type=Path, default=REPO / "langscene_core/assets/tiny-clip")
    parser.add_argument("--train-scenes", type=int, default=300)
    parser.add_argument("--views", type=int, default=6, help="random views per training scene")
    parser.add_argument("--crops-per-instance", type=int, default=2)
    parser.add_argument(
        "--partial-fraction",
        type=float,
        default=PARTIAL_FRACTION,
        help="share of the mask crops cut to a partial mask (a stand-in for the mappers' pieces)",
    )
    parser.add_argument("--eval-scenes", type=int, default=60)
    parser.add_argument("--eval-views", type=int, default=4)
    parser.add_argument("--steps", type=int, default=TinyClipTrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TinyClipTrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TinyClipTrainConfig.learning_rate)
    parser.add_argument(
        "--include-held-out",
        action="store_true",
        help="render and caption the held-out colour x shape combinations too",
    )
    parser.add_argument(
        "--confusable-weight",
        type=float,
        default=TinyClipTrainConfig.confusable_weight,
        help="weight of the relevancy term over same-colour / same-shape names",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.cache.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    start = time.perf_counter()
    tag = f"s{args.seed}_n{args.train_scenes}_v{args.views}" + ("_all" if args.include_held_out else "")
    train_views = cached_views(
        args.cache / f"train_views_{tag}.npz",
        range(args.seed * 100_000, args.seed * 100_000 + args.train_scenes),
        args.views,
        exclude_held_out=not args.include_held_out,
    )
    eval_seeds = range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + args.eval_scenes)
    eval_views = cached_views(
        args.cache / f"eval_views_n{args.eval_scenes}_v{args.eval_views}.npz",
        eval_seeds,
        args.eval_views,
        exclude_held_out=False,
    )
    size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
    partial_tag = "" if args.partial_fraction == PARTIAL_FRACTION else f"_p{args.partial_fraction:g}"
    bank = cached_bank(
        args.cache / f"bank_{tag}_c{args.crops_per_instance}_{size}{partial_tag}.pt",
        train_views,
        args.crops_per_instance,
        size,
        args.seed,
        args.partial_fraction,
    )
    times["data_s"] = time.perf_counter() - start
    print(
        json.dumps(
            {
                "train_views": len(train_views),
                "crops": len(bank),
                "eval_views": len(eval_views),
                "data_s": round(times["data_s"], 1),
            }
        ),
        flush=True,
    )

    clip = build_clip(TINY_CLIP_CONFIG, seed=args.seed)
    config = TinyClipTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        confusable_weight=args.confusable_weight,
        include_held_out=args.include_held_out,
        seed=args.seed,
    )
    start = time.perf_counter()
    train_tiny_clip(clip, bank, config, log=lambda row: print(json.dumps(row), flush=True))
    times["train_s"] = time.perf_counter() - start

    clip.model.half()  # float16 on disk halves the asset; load_clip casts back to float32
    save_clip(clip, args.out, TINY_CLIP_CONFIG)
    save_vocabulary(name_captions(subject_combos(include_held_out=True)).texts, args.out)  # every name it may be asked
    loaded = load_clip("", str(args.out))  # evaluate exactly what ships
    metrics = retrieval_accuracy(loaded, retrieval_set(eval_views, size, EVAL_MIN_PIXELS))
    record = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "threads": args.threads,
        "train": dataclasses.asdict(config),
        "model_cfg": TINY_CLIP_CONFIG,
        "data": {
            "train_scenes": args.train_scenes,
            "views_per_scene": args.views,
            "crops": len(bank),
            "partial_fraction": args.partial_fraction,
            "eval_scenes": args.eval_scenes,
            "eval_views_per_scene": args.eval_views,
            "eval_min_pixels": EVAL_MIN_PIXELS,
        },
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "metrics": metrics,
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"metrics": metrics}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
