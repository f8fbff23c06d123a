"""Per-mask CLIP features: one unit vector per mask per level, painted into feature maps."""

import numpy as np
import pytest
import torch
from language_helpers import tabletop_image, tiny_clip

from langscene_core.language.clip import encode_images
from langscene_core.language.features import mask_crops, mask_features
from langscene_core.language.masks import FelzenszwalbMasks


@pytest.fixture(scope="module")
def setup():
    clip = tiny_clip()
    image, objects = tabletop_image()
    masks = FelzenszwalbMasks()(image)
    return clip, image, objects, masks, mask_features(clip, image, masks, batch_size=7)


def test_one_unit_feature_per_mask_per_level(setup):
    clip, image, _, masks, features = setup
    counts = [int(level.max()) + 1 for level in masks]
    assert features.table.shape == (sum(counts), clip.dim)
    assert torch.allclose(features.table.norm(dim=1), torch.ones(sum(counts)), atol=1e-5)
    assert features.ids.shape == masks.shape
    # level l's ids are offset past the rows of the previous levels
    for level, offset in zip(range(3), np.cumsum([0] + counts[:-1])):
        assert torch.equal(features.ids[level], torch.from_numpy(masks[level]).long() + int(offset))


def test_feature_maps_paint_each_mask_with_its_row(setup):
    clip, image, _, masks, features = setup
    maps = features.feature_maps()
    assert maps.shape == (3, *image.shape[:2], clip.dim)
    assert torch.allclose(maps.norm(dim=-1), torch.ones(maps.shape[:3]), atol=1e-5)
    level, k = 0, int(masks[0][60, 115])  # the mask under a pixel of the blue box
    inside = torch.from_numpy(masks[0] == k)
    assert torch.allclose(
        maps[level][inside], features.table[features.ids[level][60, 115]].expand(int(inside.sum()), -1)
    )


def test_features_are_the_encoded_masked_crops(setup):
    clip, image, objects, masks, features = setup
    crops = mask_crops(image, masks[2], clip.image_size)
    k = int(masks[2][60, 115])  # the box at the coarsest level
    crop = crops[k]
    # the crop shows the box's blue on black: no wall, table or red pixels leak in
    colours = crop.reshape(3, -1).T
    lit = colours[colours.sum(dim=1) > 0.3]
    assert len(lit) > 0.3 * len(colours)
    assert (lit[:, 2] > lit[:, 0] + 0.4).float().mean() > 0.95
    offset = int(masks[0].max()) + int(masks[1].max()) + 2
    assert torch.allclose(features.table[offset + k], encode_images(clip, crop[None])[0], atol=1e-5)
    # masks of different objects get different features
    other = int(masks[2][50, 50])
    assert features.table[offset + k] @ features.table[offset + other] < 0.9999


def test_uncovered_pixels_get_zero_features(setup):
    clip, image, _, masks, _ = setup
    partial = masks.copy()
    partial[:, :, :40] = -1
    features = mask_features(clip, image, partial)
    maps = features.feature_maps()
    assert torch.all(maps[:, :, :40] == 0)
    assert torch.allclose(maps[:, :, 40:].norm(dim=-1), torch.ones(3, 120, 120), atol=1e-5)


def test_bad_masks_raise(setup):
    clip, image, _, masks, _ = setup
    with pytest.raises(ValueError, match="matching the image"):
        mask_features(clip, image, masks[:, :100])
    with pytest.raises(ValueError, match=">= -1"):
        mask_features(clip, image, masks - 5)


def test_a_region_repeated_across_levels_is_encoded_once(setup, monkeypatch):
    clip, image, _, masks, _ = setup
    import langscene_core.language.features as features_module

    encoded = []
    real = features_module.encode_images
    monkeypatch.setattr(
        features_module,
        "encode_images",
        lambda clip, images, batch_size: encoded.append(len(images)) or real(clip, images, batch_size),
    )
    repeated = np.stack([masks[0], masks[2], masks[2]])
    features = mask_features(clip, image, repeated)
    assert sum(encoded) <= int(masks[0].max()) + 1 + int(masks[2].max()) + 1
    m_rows, l_rows = features.ids[1], features.ids[2]
    assert torch.equal(features.table[m_rows], features.table[l_rows])
