"""Training pieces of bundled:tiny-clip: vocabulary, held-out combinations, crops, losses, a short run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from langscene_core.language.clip import build_clip
from langscene_core.sim import BACKGROUND_ID, TABLE_ID
from langscene_core.training.crops import (
    ViewSet,
    masked_crop,
    partial_mask,
    random_crop,
    render_views,
    square_crop,
    subject_of,
    training_spec,
    visible_instances,
)
from langscene_core.training.tiny_clip import (
    TINY_CLIP_CONFIG,
    TinyClipTrainConfig,
    build_crop_bank,
    clip_losses,
    retrieval_accuracy,
    retrieval_set,
    train_tiny_clip,
)
from langscene_core.training.vocabulary import (
    HELD_OUT,
    SUBJECT_COLORS,
    SUBJECT_SHAPES,
    name_captions,
    sample_captions,
    subject_combos,
)


@pytest.fixture(scope="module")
def views() -> ViewSet:
    return render_views(range(3), 3, exclude_held_out=True)


def test_held_out_combinations_never_in_training_captions():
    names, shapes, colors = sample_captions(np.random.default_rng(0))
    pairs = {(SUBJECT_COLORS[c], SUBJECT_SHAPES[s]) for c, s in zip(names.color, names.shape)}
    assert not pairs & set(HELD_OUT)
    assert len(names.texts) == len(subject_combos(False)) == len(subject_combos(True)) - len(HELD_OUT)
    # every colour and every shape of a held-out combination is still taught in other combinations
    for color, shape in HELD_OUT:
        assert any(c == color for c, _ in pairs) and any(s == shape for _, s in pairs)
    assert len(shapes.texts) == len(SUBJECT_SHAPES) and len(colors.texts) == len(SUBJECT_COLORS)


def test_all_combination_captions_include_the_held_out_names():
    names, _, _ = sample_captions(np.random.default_rng(0), include_held_out=True)
    pairs = {(SUBJECT_COLORS[c], SUBJECT_SHAPES[s]) for c, s in zip(names.color, names.shape)}
    assert set(HELD_OUT) <= pairs and len(names.texts) == len(subject_combos(True))


def test_confusable_names_share_exactly_one_attribute():
    captions = name_captions([("red", "mug"), ("red", "bowl"), ("blue", "mug"), ("blue", "bowl")])
    _, shapes, colors = sample_captions(np.random.default_rng(1))
    red, mug = SUBJECT_COLORS.index("red"), SUBJECT_SHAPES.index("mug")
    assert captions.confusable(np.array([red, -1]), np.array([mug, -1])).tolist() == [
        [False, True, True, False],
        [False, False, False, False],
    ]
    # shape-only and colour-only captions name one attribute: never confusable
    assert not shapes.confusable(np.array([red]), np.array([mug])).any()
    assert not colors.confusable(np.array([red]), np.array([mug])).any()


def test_confusable_term_adds_to_the_total(views):
    clip = build_clip(TINY_CLIP_CONFIG, seed=0)
    bank = build_crop_bank(views, 1, TINY_CLIP_CONFIG["vision_cfg"]["image_size"], seed=0)
    groups = sample_captions(np.random.default_rng(0))
    with torch.no_grad():
        plain = clip_losses(clip, bank.images[:16], bank.color[:16], bank.shape[:16], groups)
        weighted = clip_losses(clip, bank.images[:16], bank.color[:16], bank.shape[:16], groups, confusable_weight=2.0)
    assert plain["confusable"] > 0 and torch.isclose(plain["total"], plain["contrastive"] + plain["relevancy"])
    assert torch.isclose(weighted["total"], plain["total"] + 2.0 * plain["confusable"])


def test_caption_matching_by_attributes():
    captions = name_captions([("red", "mug"), ("blue", "mug")])
    _, shapes, colors = sample_captions(np.random.default_rng(1))
    red, mug = SUBJECT_COLORS.index("red"), SUBJECT_SHAPES.index("mug")
    assert captions.matches(np.array([red, red, -1]), np.array([mug, 0, -1])).tolist() == [
        [True, False],
        [False, False],
        [False, False],
    ]
    assert shapes.matches(np.array([red]), np.array([mug]))[0].sum() == 1
    assert colors.matches(np.array([red]), np.array([mug]))[0].tolist() == [c == "red" for c in SUBJECT_COLORS]


def test_training_specs_drop_held_out_objects():
    for seed in range(40):
        spec = training_spec(seed, exclude_held_out=True)
        assert not {(o.color, o.shape) for o in spec.objects} & set(HELD_OUT)
    assert any({(o.color, o.shape) for o in training_spec(s, False).objects} & set(HELD_OUT) for s in range(40))


def test_rendered_views_label_instances(views):
    assert views.rgb.shape == (9, 120, 160, 3) and views.ids.shape == (9, 120, 160)
    assert views.depth.shape == (9, 120, 160) and ((views.depth > 0) == (views.ids != BACKGROUND_ID)).all()
    assert views.intrinsics(0).width == 160 and views.intrinsics(8).height == 120
    rows = visible_instances(views)
    assert {int(i) for i in rows[:, 1]} >= {BACKGROUND_ID, TABLE_ID, 1}
    for view, instance in rows:
        color, shape = subject_of(views, int(view), int(instance))
        if instance == BACKGROUND_ID:
            assert (color, shape) == (-1, -1)
        else:
            assert color >= 0 and shape >= 0
            assert (SUBJECT_SHAPES[shape] == "table") == (instance == TABLE_ID)


def test_square_crop_centres_box_and_pads_black():
    image = np.ones((10, 20, 3), dtype=np.float32)
    crop = square_crop(image, (0, 0, 10, 20), 20)  # 10 x 20 box -> rows 5..14 of a 20 x 20 square
    assert crop.shape == (3, 20, 20)
    assert crop[:, :4].max() < 1e-3 and crop[:, 16:].max() < 1e-3 and crop[:, 6:14].min() > 0.99
    outside = square_crop(image, (-5, -5, 5, 5), 10)  # half the box is off the image: black there
    assert outside[:, :4, :4].max() < 1e-3 and outside[:, 6:, 6:].min() > 0.99


def test_masked_crop_blacks_out_everything_outside_the_mask():
    image = np.full((12, 12, 3), 0.8, dtype=np.float32)
    mask = np.zeros((12, 12), dtype=bool)
    mask[2:6, 2:10] = True
    mask[2:4, 2:4] = False
    crop = masked_crop(image, mask, 8).numpy()  # box 4 x 8 -> rows 2..5 of the 8 x 8 square
    assert crop[:, 0:2].max() < 1e-3 and crop[:, 6:].max() < 1e-3
    assert crop[:, 2, 0:2].max() < 0.3 and crop[:, 5, 2:6].min() > 0.7


def test_partial_mask_is_a_large_subset(views):
    rng = np.random.default_rng(0)
    mask = views.ids[0] == TABLE_ID
    for _ in range(20):
        part = partial_mask(mask, rng)
        assert not (part & ~mask).any() and part.sum() >= 0.4 * mask.sum()


def test_partial_fraction_sets_how_many_mask_crops_are_cut(views):
    view, instance = (int(i) for i in visible_instances(views)[0])

    def crop(seed: int, fraction: float) -> torch.Tensor:
        return random_crop(views, view, instance, 32, np.random.default_rng(seed), partial_fraction=fraction)

    # same seed, same draws up to the partial-mask choice: fraction 1 cuts the mask crops, fraction 0 never
    differ = [not torch.equal(crop(seed, 0.0), crop(seed, 1.0)) for seed in range(40)]
    assert 0 < sum(differ) < 40
    assert all(torch.equal(crop(seed, 0.0), crop(seed, 0.0)) for seed in range(3))


def test_random_crops_have_the_encoder_size(views):
    rng = np.random.default_rng(0)
    for view, instance in visible_instances(views)[:12]:
        crop = random_crop(views, int(view), int(instance), 32, rng)
        assert crop.shape == (3, 32, 32) and 0.0 <= crop.min() and crop.max() <= 1.0 and crop.max() > 0.05


def test_losses_are_finite_and_short_training_lowers_them(views, one_torch_thread):
    torch.manual_seed(0)
    clip = build_clip(TINY_CLIP_CONFIG, seed=0)
    bank = build_crop_bank(views, 1, TINY_CLIP_CONFIG["vision_cfg"]["image_size"], seed=0)
    assert len(bank) == len(visible_instances(views)) and bank.images.dtype == torch.uint8
    groups = sample_captions(np.random.default_rng(0))
    before = clip_losses(clip, bank.images, bank.color, bank.shape, groups)
    assert all(torch.isfinite(v) for v in before.values())
    history = train_tiny_clip(clip, bank, TinyClipTrainConfig(steps=25, batch_size=24, warmup_steps=5))
    after = clip_losses(clip, bank.images, bank.color, bank.shape, groups)
    assert len(history) == 25 and not clip.model.training
    assert after["total"] < 0.6 * before["total"], (before, after)


def test_retrieval_accuracy_of_an_untrained_model_is_near_chance(views):
    clip = build_clip(TINY_CLIP_CONFIG, seed=0)
    data = retrieval_set(views, TINY_CLIP_CONFIG["vision_cfg"]["image_size"], min_pixels=80)
    assert len(data.images) > 0 and (data.shape >= 0).all()
    metrics = retrieval_accuracy(clip, data)
    assert metrics["seen_top1"] < 0.3 and metrics["seen_count"] + metrics["held_out_count"] == len(data.images)
    for key in ("other_shape_below_half", "other_color_below_half"):
        assert 0.0 <= metrics[key] <= 1.0
