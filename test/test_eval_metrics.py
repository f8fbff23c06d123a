"""langscene_core.eval.metrics against LangSplat's two functions of ``eval/evaluate_iou_loc.py``
(``lerf_localization`` and ``activate_stream``, with ``utils.smooth``), re-implemented here independently
in plain loops over pixels from that file: same hits, same levels, same IoUs on random maps; plus
hand-made maps for ties, box edges, the even kernel's anchor, the reflected border, the 0.7 threshold
and the majority filter's edges."""

import numpy as np
import pytest

from langscene_core.eval.metrics import box_filter, filter_px, localize, majority_filter, segment


def reflect_101(i: int, n: int) -> int:
    """OpenCV BORDER_REFLECT_101 index (gfedcb|abcdefgh|gfedcba)."""
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def reference_filter2d(image: np.ndarray, size: int) -> np.ndarray:
    """cv2.filter2D(image, -1, ones((size, size)) / size**2): correlation, anchor at the kernel centre
    (size // 2), default border."""
    h, w = image.shape
    out = np.zeros((h, w))
    anchor = size // 2
    for r in range(h):
        for c in range(w):
            total = 0.0
            for i in range(size):
                for j in range(size):
                    total += image[reflect_101(r + i - anchor, h), reflect_101(c + j - anchor, w)] / size**2
            out[r, c] = total
    return out


def reference_smooth(mask: np.ndarray) -> np.ndarray:
    """LangSplat utils.smooth: majority (np.bincount argmax) in mask[max(0, i-3):min(i+4, h-1), ...]."""
    h, w = mask.shape
    out = mask.copy()
    for i in range(h):
        for j in range(w):
            square = mask[max(0, i - 3) : min(i + 4, h - 1), max(0, j - 3) : min(j + 4, w - 1)]
            out[i, j] = np.argmax(np.bincount(square.reshape(-1)))
    return out


def reference_localization(maps: np.ndarray, boxes: list, size: int) -> tuple[bool, int]:
    """lerf_localization for one prompt: (hit, chosen level)."""
    filtered = [reference_filter2d(m, size) for m in maps]
    scores = [f.max() for f in filtered]
    level = int(np.argmax(scores))
    coords = np.asarray(np.nonzero(filtered[level] == scores[level])).transpose(1, 0)[..., ::-1]  # (x, y)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=float).reshape(-1, 4):
        for x, y in coords:
            if min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
                return True, level
    return False, level


def reference_iou(maps: np.ndarray, gt: np.ndarray, size: int, thresh: float = 0.4) -> tuple[float, int]:
    """activate_stream for one prompt: (IoU at the chosen level, chosen level)."""
    ious, averaged = [], []
    for m in maps:
        valid = 0.5 * (reference_filter2d(m, size) + m)
        averaged.append(valid)
        output = valid - valid.min()
        output = output / (output.max() + 1e-9)
        output = output * (1.0 - (-1.0)) + (-1.0)
        output = np.clip(output, 0, 1)
        pred = reference_smooth((output > thresh).astype(np.uint8))
        ious.append(np.logical_and(gt, pred).sum() / np.logical_or(gt, pred).sum())
    level = int(np.argmax([a.max() for a in averaged]))
    return float(ious[level]), level


def random_case(rng: np.random.Generator, shape=(3, 17, 23)):
    """Random relevancy maps in (0, 1) with a brighter blob on one level, and a ground-truth mask and
    box near it (jittered, so that hits and misses, high and low IoUs all occur)."""
    levels, h, w = shape
    maps = rng.uniform(0.3, 0.45, size=shape)
    r, c = rng.integers(3, h - 9), rng.integers(3, w - 9)
    maps[rng.integers(levels), r : r + 6, c : c + 6] += rng.uniform(0.02, 0.4)
    gr, gc = r + rng.integers(-3, 4), c + rng.integers(-3, 4)
    gt = np.zeros((h, w), bool)
    gt[gr : gr + rng.integers(3, 8), gc : gc + rng.integers(3, 8)] = True
    box = [gc, gr, gc + rng.integers(2, 7), gr + rng.integers(2, 7)]
    return maps, gt, [box]


@pytest.mark.parametrize("size", [1, 3, 4, 5, 6])
def test_box_filter_is_cv2_filter2d(size):
    image = np.random.default_rng(size).uniform(size=(9, 13))
    np.testing.assert_allclose(box_filter(image, size), reference_filter2d(image, size), rtol=0, atol=1e-12)


def test_box_filter_even_anchor_and_reflected_border():
    spike = np.zeros((8, 8))
    spike[4, 4] = 1.0
    filtered = box_filter(spike, 4)  # window of p spans p - 2 .. p + 1: the spike reaches rows/cols 3..6
    assert set(zip(*np.nonzero(filtered))) == {(r, c) for r in range(3, 7) for c in range(3, 7)}
    corner = np.zeros((6, 6))
    corner[1, 1] = 1.0  # reflect-101: row/col -1 reads row/col 1, so (0, 0)'s 3 x 3 window sees it 4 times
    assert box_filter(corner, 3)[0, 0] == pytest.approx(4 / 9)
    corner = np.zeros((6, 6))
    corner[0, 0] = 1.0  # the edge itself is not repeated
    assert box_filter(corner, 3)[0, 0] == pytest.approx(1 / 9)


def test_same_hits_levels_and_ious_as_langsplat_on_random_maps():
    rng = np.random.default_rng(22)
    hits, ious = [], []
    for trial in range(40):
        maps, gt, boxes = random_case(rng)
        size = (1, 3, 4, 5)[trial % 4]
        loc = localize(maps, boxes, size)
        assert (loc.hit, loc.level) == reference_localization(maps, boxes, size), trial
        seg = segment(maps, gt, size)
        assert (seg.iou, seg.level) == reference_iou(maps, gt, size), trial
        hits.append(loc.hit)
        ious.append(seg.iou)
    assert 5 < sum(hits) < 35 and min(ious) == 0.0 and max(ious) > 0.5  # the cases are not all alike


def test_any_pixel_at_the_maximum_is_a_hit():
    m = np.zeros((1, 12, 12))
    m[0, 2:9, 1:11] = 0.5  # a plateau: after a 3 x 3 filter, every window inside it ties at 0.5
    first = localize(m, [[0, 0, 1, 1]], 3)  # np.argmax would take (row 3, col 2); the plateau spans cols 2..9
    assert len(first.pixels) == 5 * 8 and not first.hit
    assert localize(m, [[9, 7, 11, 11]], 3).hit  # only the plateau's last pixel (x 9, y 7) is in this box
    assert reference_localization(m, [[9, 7, 11, 11]], 3) == (True, 0)


def test_box_edges_are_inclusive_on_pixel_indices():
    m = np.zeros((1, 10, 30))
    m[0, 4, 20] = 1.0
    assert localize(m, [[15, 0, 20, 10]], 1).hit  # x = column index 20, edge x2 = 20 included
    assert localize(m, [[20, 4, 15, 4]], 1).hit  # corners in any order
    assert not localize(m, [[21, 0, 25, 10]], 1).hit
    assert not localize(m, [[15, 0, 19.9, 10]], 1).hit


def test_localization_and_iou_choose_their_levels_apart():
    m = np.full((2, 20, 20), 0.1)
    m[0, 10, 10] = 2.0  # a spike: highest raw and averaged maximum, lowest filtered one
    m[1, 3:9, 3:9] = 0.6  # a broad plateau: highest filtered maximum
    assert localize(m, [[3, 3, 8, 8]], 5).level == 1 and localize(m, [[3, 3, 8, 8]], 5).hit
    gt = np.zeros((20, 20), bool)
    gt[3:9, 3:9] = True
    seg = segment(m, gt, 5)
    assert seg.level == 0 and (seg.iou, seg.level) == reference_iou(m, gt, 5)
    assert localize(m, [[3, 3, 8, 8]], 1).level == 0  # no filter: the spike answers


def test_threshold_is_normalised_seven_tenths():
    m = np.zeros((1, 24, 24))
    m[0, 0, 0] = 1.0  # sets the range; the majority filter removes it
    m[0, 4:12, 4:12] = 0.69
    m[0, 12:20, 12:20] = 0.71
    gt = np.zeros((24, 24), bool)
    gt[12:20, 12:20] = True
    seg = segment(m, gt, 1)
    assert seg.mask[14:18, 14:18].all() and not seg.mask[4:12, 4:12].any() and not seg.mask[0, 0]
    assert seg.iou == reference_iou(m, gt, 1)[0] < 1.0  # the 7 x 7 majority rounds the square's corners
    assert segment(np.full((1, 24, 24), 0.8), gt, 5).iou == 0.0  # constant: nothing predicted


def test_majority_filter_edges_and_ties():
    mask = np.zeros((10, 10), np.uint8)
    mask[:, 9] = 1  # the last column is in no window: it vanishes
    assert not majority_filter(mask).any()
    np.testing.assert_array_equal(majority_filter(mask), reference_smooth(mask).astype(bool))
    mask = np.zeros((10, 10), np.uint8)
    mask[0:2, 0:4] = 1  # (0, 0)'s window is rows 0..3, cols 0..3: 8 ones of 16, a tie -> 0
    assert not majority_filter(mask)[0, 0]
    mask[2, 0] = 1
    assert majority_filter(mask)[0, 0]
    rng = np.random.default_rng(3)
    for shape in ((2, 2), (5, 9), (16, 11)):
        mask = (rng.uniform(size=shape) < 0.5).astype(np.uint8)
        np.testing.assert_array_equal(majority_filter(mask), reference_smooth(mask).astype(bool))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="empty ground-truth"):
        segment(np.ones((1, 4, 4)), np.zeros((4, 4), bool), 1)
    with pytest.raises(ValueError, match="differ in shape"):
        segment(np.ones((1, 4, 4)), np.ones((4, 5), bool), 1)
    with pytest.raises(ValueError, match="at least 2 x 2"):
        majority_filter(np.ones((1, 5)))
    assert filter_px(1000) == 30 and filter_px(988) == 30 and filter_px(160) == 5 and filter_px(320) == 10
