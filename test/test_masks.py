"""s/m/l mask mappers: every pixel covered at three nested, increasingly coarse levels."""

import numpy as np
import pytest
from language_helpers import tabletop_image
from skimage.metrics import adapted_rand_error

from langscene_core.config import MasksConfig
from langscene_core.language.masks import FelzenszwalbMasks, make_mask_mapper


@pytest.fixture(scope="module")
def image_and_masks():
    image, objects = tabletop_image()
    return image, objects, make_mask_mapper(MasksConfig())(image)


def test_three_levels_cover_every_pixel(image_and_masks):
    image, _, masks = image_and_masks
    assert masks.shape == (3, *image.shape[:2]) and masks.dtype == np.int32
    for level in masks:
        assert level.min() == 0  # no uncovered pixel (-1)
        assert np.array_equal(np.unique(level), np.arange(level.max() + 1))  # ids 0..M-1


def test_levels_are_nested_and_increasingly_coarse(image_and_masks):
    _, _, masks = image_and_masks
    counts = [len(np.unique(level)) for level in masks]
    assert counts[0] >= counts[1] >= counts[2] and counts[0] > counts[2], counts
    for fine, coarse in zip(masks[:-1], masks[1:]):
        # every fine region lies inside exactly one coarse region
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        assert pairs.shape[1] == len(np.unique(fine))


def test_objects_are_separated_and_whole(image_and_masks):
    _, objects, masks = image_and_masks
    disc, box = objects["disc"], objects["box"]
    inner_disc = disc & np.roll(disc, 3, 0) & np.roll(disc, -3, 0) & np.roll(disc, 3, 1) & np.roll(disc, -3, 1)
    for level in masks:
        # the red disc and the blue box never share a mask
        assert not set(np.unique(level[disc])) & set(np.unique(level[box]))
    # at the coarsest level the inside of the disc is a single region
    assert len(np.unique(masks[2][inner_disc])) == 1


def test_uint8_and_float_images_agree(image_and_masks):
    image, _, masks = image_and_masks
    as_uint8 = (image * 255).round().astype(np.uint8)
    other = FelzenszwalbMasks()(as_uint8)
    assert other.shape == masks.shape
    # quantisation may move a few boundary pixels or renumber regions, not change the partition
    for a, b in zip(other, masks):
        assert adapted_rand_error(b, a)[0] < 0.05


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="RGB"):
        FelzenszwalbMasks()(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="merge_thresholds"):
        FelzenszwalbMasks(merge_thresholds=(0.3, 0.1))
    with pytest.raises(ValueError, match="unknown models.masks.mapper"):
        make_mask_mapper(MasksConfig(mapper="watershed"))
    with pytest.raises(ValueError, match="sam2"):
        make_mask_mapper(MasksConfig(mapper="sam2"))
