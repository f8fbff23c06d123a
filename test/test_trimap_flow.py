"""Motion-compensated interpolation (the flow_correction condition): the flow follows a translation,
in-betweens of a moving texture are far closer to the truth than the linear cross-fade, the keyframes are
kept exactly, bad input raises."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter, shift

from langscene_core.training.trimap_clips import psnr
from langscene_core.trimap.flow import flow_interpolation, keyframe_flow
from langscene_core.trimap.pipeline import cross_fade_video

TRAVEL_PX = 6.0


def _sliding_texture(frames: int = 9, size: int = 48) -> np.ndarray:
    """[T, size, size, 3] float32 in [0, 1]: a smooth random texture (tinted) sliding TRAVEL_PX right."""
    texture = gaussian_filter(np.random.default_rng(0).random((size, size)), 4.0)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    tint = np.array([1.0, 0.8, 0.6])
    return np.stack(
        [
            shift(texture, (0, TRAVEL_PX * k / (frames - 1)), order=1, mode="grid-wrap")[..., None] * tint
            for k in range(frames)
        ]
    ).astype(np.float32)


def test_flow_follows_a_translation():
    clip = _sliding_texture()
    flow = keyframe_flow(clip[0].transpose(2, 0, 1), clip[-1].transpose(2, 0, 1))
    inner = (slice(None), slice(12, -12))  # away from the wrapped border
    assert np.median(flow[1][inner]) == pytest.approx(TRAVEL_PX, abs=0.5)
    assert abs(np.median(flow[0][inner])) < 0.5


def test_in_betweens_beat_the_cross_fade_and_keep_the_keyframes():
    clip = _sliding_texture()
    truth = torch.from_numpy(clip).permute(3, 0, 1, 2)[None] * 2 - 1  # [1, 3, T, H, W] in [-1, 1]
    interpolated = flow_interpolation(truth[:, :, 0], truth[:, :, -1], 9)
    faded = cross_fade_video(truth[:, :, 0], truth[:, :, -1], 9)
    assert interpolated.shape == truth.shape
    assert torch.equal(interpolated[:, :, 0], truth[:, :, 0]) and torch.equal(interpolated[:, :, -1], truth[:, :, -1])
    inner = (slice(1, 8), slice(None), slice(12, -12))  # in-between frames, away from the wrapped border

    def score(video):
        return psnr((video[0].permute(1, 2, 3, 0).numpy()[inner] + 1) / 2, clip[inner])

    assert score(interpolated) > score(faded) + 5.0, (score(interpolated), score(faded))


def test_bad_input_raises():
    frame = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="\\[B, 3, H, W\\]"):
        flow_interpolation(frame, torch.rand(1, 3, 16, 8), 9)
    with pytest.raises(ValueError, match="num_frames"):
        flow_interpolation(frame, frame, 1)
