"""The bundled models load through the pipeline's loaders and do their job on freshly rendered scenes
(seeds used by neither training nor the model card's evaluation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from langscene_core.assets import bundled_path
from langscene_core.config import DensifyConfig, QueryConfig, TrimapModelConfig, load_config
from langscene_core.language.clip import encode_images, encode_text, load_clip
from langscene_core.language.features import mask_crops
from langscene_core.language.lqc import load_lqc, name_round_trip
from langscene_core.language.masks import make_mask_mapper
from langscene_core.language.relevancy import relevancy
from langscene_core.sim import SHAPES
from langscene_core.training.crops import render_views
from langscene_core.training.lqc_corpus import mask_feature_corpus, object_features
from langscene_core.training.trimap_clips import cross_fade, normal_error_deg, psnr, render_clip
from langscene_core.training.vocabulary import HELD_OUT, SUBJECT_COLORS, SUBJECT_SHAPES
from langscene_core.trimap import PoseRecoveryError, load_trimap, normal_pass, recover_poses, rgb_pass, semantic_pass

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is faster

FRESH_SEEDS = range(3_000_000, 3_000_004)
NAME_SEEDS = range(3_000_000, 3_000_020)  # the per-name round trip needs several crops per name
SFM_SEEDS = range(3_000_000, 3_000_008)
SFM_CLIPS_REGISTERED = 6  # of the 8 SFM_SEEDS clips, every frame
MIN_PIXELS = 80  # objects at least this visible are scored
# per-name round trip on NAME_SEEDS: the shipped pair of session 3 kept 91.0 % with 2 names below 50 %,
# the session-3 all-combination pair that lost its cylinders 78.4 % with 5 (assets/README.md)
ROUND_TRIP_MIN = 0.85
MAX_COLLAPSED = 2
MAX_ASSET_BYTES = 10 * 2**20


@pytest.fixture(scope="module")
def views():
    return render_views(FRESH_SEEDS, 3, exclude_held_out=False)


@pytest.fixture(scope="module")
def clip():
    return load_clip("ViT-B-16", "bundled:tiny-clip")  # the arch is ignored for a bundled directory


def _object_crops(clip, views):
    """Pipeline mask crops (langscene_core.language.features.mask_crops) of every object covering MIN_PIXELS
    pixels. Returns crops [N, 3, S, S], the object names [N], and per crop the names in its scene."""
    crops, names, scene_names = [], [], []
    for v in range(len(views)):
        ids = views.ids[v].astype(np.int64)
        objects = [k for k in range(1, views.color.shape[1]) if views.color[v, k] >= 0]
        present = [k for k in objects if (ids == k).sum() >= MIN_PIXELS]
        labels = np.full(ids.shape, -1)
        for row, k in enumerate(present):
            labels[ids == k] = row
        if present:
            crops.append(mask_crops(views.rgb[v], labels, clip.image_size))
        name = [f"{SUBJECT_COLORS[views.color[v, k]]} {SUBJECT_SHAPES[views.shape[v, k]]}" for k in objects]
        names += [name[objects.index(k)] for k in present]
        scene_names += [name] * len(present)
    return torch.cat(crops), names, scene_names


def test_tiny_clip_asset_is_small():
    files = list(bundled_path("tiny-clip").iterdir())
    assert {"open_clip_config.json", "open_clip_model.safetensors"} <= {f.name for f in files}
    assert sum(f.stat().st_size for f in files) < MAX_ASSET_BYTES


def test_tiny_clip_names_objects_and_beats_the_canonical_negatives(clip, views):
    crops, names, scene_names = _object_crops(clip, views)
    assert len(names) >= 20
    image = encode_images(clip, crops)
    vocabulary = sorted({f"{c} {s}" for c in SUBJECT_COLORS for s in SHAPES})
    text = encode_text(clip, vocabulary)
    scores = image @ text.T  # [N crops, names]
    truth = torch.tensor([vocabulary.index(n) for n in names])
    seen = torch.tensor([tuple(n.split()) not in HELD_OUT for n in names])
    top1 = scores.argmax(1) == truth
    assert top1[seen].float().mean() >= 0.85, [(n, vocabulary[b]) for n, b in zip(names, scores.argmax(1).tolist())]
    in_scene = [
        cands[int(scores[i, [vocabulary.index(c) for c in cands]].argmax())] == names[i]
        for i, cands in enumerate(scene_names)
    ]
    assert np.mean(in_scene) >= 0.9
    negatives = encode_text(clip, list(QueryConfig().negatives))
    right = scores.gather(1, truth[:, None])[:, 0]
    assert (right[:, None] > image @ negatives.T).all(1).float().mean() >= 0.9
    # LERF relevancy of the right name is high, of another object's name in the same scene low
    other = torch.tensor([vocabulary.index(next(c for c in cands if c != n)) for n, cands in zip(names, scene_names)])
    rel_right = torch.stack([relevancy(f[None], text[t], negatives)[0] for f, t in zip(image, truth)])
    rel_other = torch.stack([relevancy(f[None], text[t], negatives)[0] for f, t in zip(image, other)])
    assert (rel_right > 0.5).float().mean() >= 0.9 and (rel_other < 0.5).float().mean() >= 0.8, (rel_right, rel_other)


def test_tiny_lqc_reconstructs_tiny_clip_mask_features(clip, views):
    config = load_config()
    assert config.models.lqc.checkpoint == "bundled:tiny-lqc"
    lqc = load_lqc(config.models.lqc.checkpoint)
    assert (lqc.config.codebook_size, lqc.config.latent_dim, lqc.config.feature_dim) == (2048, 3, clip.dim)
    features = mask_feature_corpus(clip, views, make_mask_mapper(config.models.masks))
    decoded = lqc.decode(lqc.encode(features))
    assert decoded.shape == features.shape
    cosine = float((decoded * features).sum(1).mean())
    assert cosine >= 0.9, cosine


def test_tiny_lqc_keeps_every_object_name_through_the_round_trip(clip):
    """The query's own criterion, name by name: the right name's LERF relevancy stays above 0.5 after
    decode(encode(x)) for the whole-mask features of objects. Mean cosine hid a compressor that lost
    every cylinder (session 3, assets/README.md)."""
    views = render_views(NAME_SEEDS, 3, exclude_held_out=False)
    objects = object_features(clip, views, MIN_PIXELS)
    vocabulary = [f"{c} {s}" for c in SUBJECT_COLORS for s in SHAPES]  # row color * len(SHAPES) + shape
    result = name_round_trip(
        load_lqc("bundled:tiny-lqc"),
        objects.features,
        objects.color * len(SHAPES) + objects.shape,
        encode_text(clip, vocabulary),
        encode_text(clip, list(QueryConfig().negatives)),
    )
    clip_rate, round_trip = result.overall()
    assert clip_rate >= 0.9 and round_trip >= ROUND_TRIP_MIN, (clip_rate, round_trip)
    frequent = result.count >= 3
    collapsed = [vocabulary[t] for t in torch.nonzero(frequent & (result.round_trip < 0.5)).flatten().tolist()]
    assert int(frequent.sum()) >= 10 and len(collapsed) <= MAX_COLLAPSED, collapsed
    assert (result.round_trip[frequent] > 0).all(), [vocabulary[t] for t in torch.nonzero(frequent).flatten()]


def test_tiny_trimap_beats_the_cross_fade_on_fresh_clips():
    """On fresh 15-40 deg clips the shipped model (one step, as the model card evaluates it) generates
    in-betweens closer to the truth than the keyframes' linear cross-fade in RGB (every clip) and normals
    (on average), and masks about as good as the nearer keyframe's (assets/README.md: measured
    +2.1 dB, -0.7 deg, +0.5 points on these clips)."""
    settings = TrimapModelConfig(path="bundled:tiny-trimap", dtype="float32", frames=9, steps=1, guidance=1.0)
    pipe = load_trimap(settings)
    middle = slice(1, 8)
    rows = []
    for seed in FRESH_SEEDS:
        clip = render_clip(seed, 9, pipe.native_size, (15.0, 40.0))
        generator = torch.Generator().manual_seed(0)
        rgb = rgb_pass(pipe, clip.rgb[0], clip.rgb[-1], settings, generator)
        normals = normal_pass(pipe, clip.normals[0], clip.normals[-1], settings, generator)
        masks = semantic_pass(pipe, clip.ids[0][None], clip.ids[-1][None], settings, generator)[:, 0]
        nearer = np.stack([clip.ids[0] if t < 4.5 else clip.ids[-1] for t in range(9)])
        rows.append(
            (
                psnr(rgb[middle], clip.rgb[middle]),
                psnr(cross_fade(clip.rgb[0], clip.rgb[-1], 9)[middle], clip.rgb[middle]),
                normal_error_deg(normals[middle], clip.normals[middle]),
                normal_error_deg(cross_fade(clip.normals[0], clip.normals[-1], 9)[middle], clip.normals[middle]),
                float((masks[middle] == clip.ids[middle]).mean()),
                float((nearer[middle] == clip.ids[middle]).mean()),
            )
        )
    psnr_model, psnr_fade, normals_model, normals_fade, masks_model, masks_nearer = np.mean(rows, axis=0)
    assert all(row[0] > row[1] for row in rows), rows
    assert psnr_model >= psnr_fade + 1.0, rows
    assert normals_model <= normals_fade - 0.25, rows
    assert masks_model >= masks_nearer - 0.02, rows


@pytest.mark.slow  # eight generated clips and eight single-threaded SfM runs: about 35 s
def test_sfm_registers_tiny_trimap_frames_on_fresh_clips():
    """SfM (recover_poses, only the keyframes' poses given) registers every generated frame of most fresh
    15-60 deg clips, near the true cameras (measured on these clips: 7 of 8 registered, median centre
    error 4.9 cm, the true rendered frames' 2.0 cm). The poses are not as accurate as the true frames':
    densification's 5 cm keyframe check accepts a fifth of the model's clips and half of the true
    frames' (assets/README.md)."""
    settings = TrimapModelConfig(path="bundled:tiny-trimap", dtype="float32", frames=9, steps=1, guidance=1.0)
    pipe = load_trimap(settings)
    errors = []
    for seed in SFM_SEEDS:
        clip = render_clip(seed, 9, pipe.native_size)
        rgb = rgb_pass(pipe, clip.rgb[0], clip.rgb[-1], settings, torch.Generator().manual_seed(0))
        try:
            recovered = recover_poses(
                rgb,
                clip.intrinsics,
                {0: clip.cam_to_world[0], 8: clip.cam_to_world[-1]},
                DensifyConfig(min_registered_fraction=1.0, max_keyframe_error_m=1e9),
            )
        except PoseRecoveryError:
            continue
        errors.append(float(np.median(np.linalg.norm(recovered.poses[:, :3, 3] - clip.cam_to_world[:, :3, 3], axis=1))))
    assert len(errors) >= SFM_CLIPS_REGISTERED and np.median(errors) < 0.08, errors
