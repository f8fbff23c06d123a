"""Where shape is lost, stage by stage (#25): retrieval of shape-only, colour-only and full-name prompts.

On seeded tabletops (``suite.scene_spec``: 3-6 objects, random table colour, 24-view orbit at 160x120)
of one split of ``suite.SPLITS`` (``dev`` 7000 + i, ``fresh`` 8_000_000 + i: report fresh; the depth
mask mapper was tuned on seeds 101-106, the query's level rule on dev), every prompt a user would type:

- ``shape``: the shape alone ("mug") for a shape exactly one object of the scene has;
- ``colour``: "something <colour>" for a colour exactly one object has;
- ``name``: every object's full name ("red mug").

A prompt is *retrieved* when the highest-relevancy element (LERF relevancy against ``query.negatives``)
lies on its object. Stages (``stage`` in each line):

1. ``clip_objects``: one CLIP feature per ground-truth object mask (the table included) of 4 capture
   views; the elements are the objects.
2. ``clip_masks``: the mask mapper's (``mapper``: felzenszwalb or depth) s/m/l masks of the same views,
   one CLIP feature per mask; the elements are pixels (each carries its mask's relevancy), per
   ``level`` s, m, l, and ``auto``: the level whose best pixel is highest (LangSplat's rule, which
   ``query.answer`` used before #25), and ``query``: the level the query path picks
   (:func:`langscene_core.query.answer.answer_level`).
3. ``lqc_objects`` / ``lqc_masks``: the same features through the LQC round trip (each feature
   replaced by its code's decoded feature, what a Gaussian can carry).
4. ``field`` (with ``--field``): the scene reconstructed from the capture (``config/demo.yaml``, the
   ``mapper``'s masks); the elements are Gaussians, each assigned to the object whose surface is
   nearest (within 1 cm, else none); per level as above; ``answer``: the whole query
   (``QueryableScene.answer``: level, cluster, open-set check) located within ``LOCATED_M`` of the
   object's centre. Also ``absent_answered``: absent prompts (``suite.absent_prompts``) answered with
   an object.

    .venv/bin/python bench/shape_stages.py [--split fresh] [--scenes 8] [--field] [--mappers felzenszwalb,depth]
    .venv/bin/python bench/shape_stages.py --spec config/demo_scene.json --field --mappers depth

One JSON line per (stage, mapper, level, kind): value = retrieved fraction, n = prompts; with ``--field``
also one ``shape_stages_prompt`` line per field prompt (level maxima, hits per level, answer located).
``--cache DIR`` keeps the reconstructed scenes so that query-side changes re-run in seconds.
"""

import argparse
import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import open3d as o3d
import torch

from langscene_core.config import load_config
from langscene_core.engine import LangScene
from langscene_core.eval.evaluate import LOCATED_M, mode_keyframes, object_centre
from langscene_core.eval.suite import SPLITS, absent_prompts, scene_spec
from langscene_core.language.features import mask_features
from langscene_core.language.masks import LEVELS, make_mask_mapper
from langscene_core.query.answer import answer_level, prompt_relevancy
from langscene_core.reconstruction.models import load_models
from langscene_core.sim import build_world, load_spec, render_dataset

REPO = Path(__file__).resolve().parent.parent
VIEW_STEP = 6  # capture views 0, 6, 12, 18 of the 24-view orbit
NEAREST_SURFACE_M = 0.01  # a Gaussian farther than this from every surface belongs to no object


def prompts(spec) -> list[tuple[str, str, int]]:
    """(kind, prompt, instance id) of the scene's prompts (module docstring); ids as the renderer's."""
    shapes = [o.shape for o in spec.objects]
    colours = [o.color for o in spec.objects]
    out = [("shape", o.shape, k) for k, o in enumerate(spec.objects, 1) if shapes.count(o.shape) == 1]
    out += [("colour", f"something {o.color}", k) for k, o in enumerate(spec.objects, 1) if colours.count(o.color) == 1]
    return out + [("name", o.name, k) for k, o in enumerate(spec.objects, 1)]


def round_trip(models, table: torch.Tensor) -> torch.Tensor:
    """[M, D] features -> [M, D] the decoded features of their LQC codes."""
    with torch.no_grad():
        codes = models.lqc.code_of(models.lqc.encode(table.to(models.device)))
        return models.code_features[codes].cpu()


def level_hits(values: list[np.ndarray], owner: list[np.ndarray], target: int, levels: list[int]) -> dict[str, bool]:
    """Per level (and auto, query), whether the best element's owner is ``target``. values: L arrays of
    relevancy per element; owner: L arrays of instance ids per element (-1 none)."""
    best = [int(np.argmax(v)) if len(v) else -1 for v in values]
    hits = {LEVELS[i]: bool(best[i] >= 0 and owner[i][best[i]] == target) for i in range(len(values))}
    maxima = [float(v[b]) if b >= 0 else -1.0 for v, b in zip(values, best)]
    hits["auto"] = hits[LEVELS[int(np.argmax(maxima))]]
    hits["query"] = hits[LEVELS[levels[0]]]
    return hits


def image_stages(spec, views, models, config, mappers, tally) -> None:
    """Stages 1-3 on ``views`` (rendered frames) of one scene, counted into ``tally``."""
    negatives = config.query.negatives
    batch = models.config.clip.batch_size
    for frame in views:
        objects = np.where(frame.ids >= 0, frame.ids, -1)  # 0 table, k object
        whole = mask_features(models.clip, frame.rgb, objects[None], batch_size=batch)
        present = np.unique(objects[objects >= 0])
        masks = {
            m: mask_features(models.clip, frame.rgb, mapper(frame.rgb, frame.depth, frame.intrinsics), batch)
            for m, mapper in mappers.items()
        }
        for kind, prompt, target in prompts(spec):
            if target not in present or (frame.ids == target).sum() < 80:
                continue
            for stage, table in (("clip_objects", whole.table), ("lqc_objects", round_trip(models, whole.table))):
                scores = prompt_relevancy(table[present], models, prompt, negatives)
                tally[(stage, "truth", "object", kind)].append(present[int(np.argmax(scores))] == target)
            for name, features in masks.items():
                for stage, table in (("clip_masks", features.table), ("lqc_masks", round_trip(models, features.table))):
                    scores = prompt_relevancy(table, models, prompt, negatives)
                    values, owner = [], []
                    for ids in features.ids.numpy():
                        covered = ids >= 0
                        values.append(scores[ids[covered]])
                        owner.append(frame.ids[covered])
                    level = answer_level(
                        np.array([v.max() if len(v) else 0.0 for v in values]), config.query.level_margin
                    )
                    for level_name, hit in level_hits(values, owner, target, [level]).items():
                        tally[(stage, name, level_name, kind)].append(hit)


def field_stage(spec, world, dataset, models, config, mapper: str, tally, cache: Path | None) -> float:
    """Stage 4 for one scene reconstructed with ``mapper`` (read from ``cache`` when it holds the scene,
    else reconstructed and saved there); prints one ``shape_stages_prompt`` line per prompt; returns
    the reconstruction's seconds (0 when read)."""
    masks = dataclasses.replace(config.models.masks, mapper=mapper)
    config = dataclasses.replace(config, models=dataclasses.replace(config.models, masks=masks))
    path = None if cache is None else cache / f"scene_{spec.seed}_{mapper}.ply"
    if path is not None:
        config = dataclasses.replace(config, node=dataclasses.replace(config.node, scene_dir=str(cache.resolve())))
    models = dataclasses.replace(models, masks=make_mask_mapper(masks), config=config.models)
    engine = LangScene(config, models)
    start = time.perf_counter()
    read = path is not None and path.is_file()
    if read:
        queryable = engine.load(path)
    else:
        queryable = engine.reconstruct(mode_keyframes(dataset, "dense", config.keyframe))
        if path is not None:
            engine.save(path)
    seconds = 0.0 if read else time.perf_counter() - start
    scene = queryable.scene
    closest = world.raycaster.compute_closest_points(o3d.core.Tensor(scene.means.astype(np.float32)))
    distance = np.linalg.norm(closest["points"].numpy() - scene.means, axis=1)
    owner = np.where(distance <= NEAREST_SURFACE_M, closest["geometry_ids"].numpy().astype(np.int64), -1)
    for kind, prompt, target in prompts(spec):
        table = prompt_relevancy(models.code_features, models, prompt, config.query.negatives, unit_features=True)
        values = [table[codes] for codes in queryable.codes.codes]
        maxima = np.array([table[used].max() for used in queryable.codes.used])
        level = answer_level(maxima, config.query.level_margin)
        hits = level_hits(values, [owner] * len(values), target, [level])
        for level_name, hit in hits.items():
            tally[("field", mapper, level_name, kind)].append(hit)
        box = queryable.answer(prompt).object_box
        name = spec.objects[target - 1].name
        located = box is not None and np.linalg.norm(box.pose[:3, 3] - object_centre(world, name)) <= LOCATED_M
        tally[("field", mapper, "answer", kind)].append(bool(located))
        line = {"bench": "shape_stages_prompt", "seed": spec.seed, "mapper": mapper, "kind": kind, "prompt": prompt}
        line |= {
            "object": name,
            "level_maxima": np.round(maxima, 3).tolist(),
            "hits": hits,
            "answer_located": bool(located),
        }
        print(json.dumps(line))
    for kind, prompt in absent_prompts(spec, spec.seed):
        tally[("field", mapper, "absent_answered", kind)].append(queryable.answer(prompt).object_box is not None)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="fresh", choices=sorted(SPLITS))
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--first", type=int, default=0, help="index of the first scene in the split")
    parser.add_argument("--mappers", default="felzenszwalb,depth")
    parser.add_argument("--field", action="store_true", help="also reconstruct each scene with each mapper")
    parser.add_argument("--cache", type=Path, default=None, help="keep reconstructed scenes here (read when present)")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "demo.yaml")
    parser.add_argument("--spec", type=Path, default=None, help="one scene spec file instead of the split (the demo's)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    models = load_models(config.models, config.densify)
    names = args.mappers.split(",")
    mappers = {m: make_mask_mapper(dataclasses.replace(config.models.masks, mapper=m)) for m in names}
    tally: dict[tuple, list[bool]] = defaultdict(list)
    seeds, seconds = [], defaultdict(list)
    specs = (
        [load_spec(args.spec)]
        if args.spec
        else [scene_spec(SPLITS[args.split] + i) for i in range(args.first, args.first + args.scenes)]
    )
    for spec in specs:
        seed = spec.seed
        world = build_world(spec)
        dataset = render_dataset(world)
        seeds.append(seed)
        image_stages(spec, dataset.capture[::VIEW_STEP], models, config, mappers, tally)
        if args.field:
            for mapper in names:
                seconds[mapper].append(field_stage(spec, world, dataset, models, config, mapper, tally, args.cache))
    for (stage, mapper, level, kind), hits in sorted(tally.items()):
        line = {
            "bench": "shape_stages",
            "split": str(args.spec or args.split),
            "stage": stage,
            "mapper": mapper,
            "level": level,
        }
        line |= {"kind": kind, "value": round(float(np.mean(hits)), 3), "n": len(hits)}
        print(json.dumps(line))
    summary = {
        "bench": "shape_stages_run",
        "split": str(args.spec or args.split),
        "seeds": seeds,
        "clip": config.models.clip.weights,
    }
    summary |= {
        "lqc": config.models.lqc.checkpoint,
        "reconstruct_s": {m: np.round(s, 1).tolist() for m, s in seconds.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
