"""Frame pairing by stamp and keyframe selection."""

import numpy as np

from langscene_core.capture.frames import Frame, FrameSynchronizer
from langscene_core.capture.keyframes import KeyframeBuffer, pose_distance, sharpness
from langscene_core.config import KeyframeConfig
from langscene_core.geometry.camera import Intrinsics, look_at

K = Intrinsics.from_hfov(8, 6, 60.0)
RNG = np.random.default_rng(0)
TEXTURED = RNG.integers(0, 255, (6, 8, 3), dtype=np.uint8)


def pose_at(x: float) -> np.ndarray:
    return look_at(np.array([x, -1.0, 0.5]), np.zeros(3))


def test_image_waits_for_its_pose_then_pairs():
    sync = FrameSynchronizer(tolerance_s=0.01)
    assert sync.add_image(1.0, TEXTURED) == []
    assert sync.add_pose(0.5, pose_at(0.0)) == []  # too far in time
    assert sync.add_pose(1.004, pose_at(1.0)) == []  # no camera_info yet
    frames = sync.set_intrinsics(K)
    assert len(frames) == 1 and frames[0].stamp == 1.0 and frames[0].intrinsics == K
    np.testing.assert_array_equal(frames[0].cam_to_world, pose_at(1.0))
    assert frames[0].depth is None


def test_once_depth_flows_images_wait_for_depth():
    sync = FrameSynchronizer(tolerance_s=0.01, intrinsics=K)
    depth = np.ones((6, 8), np.float32)
    sync.add_depth(0.9, depth)
    sync.add_pose(1.0, pose_at(0.0))
    assert sync.add_image(1.0, TEXTURED) == []  # depth stream exists, no depth at 1.0 yet
    frames = sync.add_depth(1.0, depth * 2)
    assert len(frames) == 1 and frames[0].depth[0, 0] == 2.0


def test_unpairable_images_are_dropped_and_counted():
    sync = FrameSynchronizer(tolerance_s=0.01, max_wait_s=5.0)
    sync.add_image(0.0, TEXTURED)
    sync.add_image(6.0, TEXTURED)  # image 0 waited too long for camera_info
    assert sync.dropped == {"no_camera_info": 1}
    sync.set_intrinsics(K)
    sync.add_image(7.0, TEXTURED)
    sync.add_pose(6.5, pose_at(0.0))  # the pose stream passed image 6.0: no pose will come for it
    assert sync.dropped == {"no_camera_info": 1, "no_pose": 1}
    assert sync.add_pose(7.0, pose_at(0.0))[0].stamp == 7.0


def test_pending_queue_is_bounded():
    sync = FrameSynchronizer(history=4, max_wait_s=100.0)
    for i in range(10):
        sync.add_image(float(i) * 0.001, TEXTURED)
    assert sync.dropped == {"overflow": 6}


def test_sharpness_orders_blur():
    blurred = np.repeat(np.repeat(TEXTURED[::2, ::2], 2, 0), 2, 1)
    assert sharpness(TEXTURED) > sharpness(blurred) > sharpness(np.full_like(TEXTURED, 128)) == 0.0


def test_pose_distance():
    a = np.eye(4)
    b = np.eye(4)
    b[:3, 3] = [0.3, 0.4, 0.0]
    b[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    moved, turned = pose_distance(a, b)
    assert np.isclose(moved, 0.5) and np.isclose(turned, 90.0)


def test_keyframe_buffer_keeps_moved_sharp_frames_and_is_bounded():
    buffer = KeyframeBuffer(
        KeyframeConfig(min_translation=0.1, min_rotation_deg=90.0, min_sharpness=1.0, max_keyframes=3)
    )
    frame = lambda x, rgb=TEXTURED: Frame(stamp=x, rgb=rgb, intrinsics=K, cam_to_world=pose_at(x))
    assert buffer.offer(frame(0.0)) == "accepted"
    assert buffer.offer(frame(0.05)) == "too_close"
    assert buffer.offer(frame(0.5, np.full_like(TEXTURED, 7))) == "blurry"
    assert buffer.offer(frame(0.5)) == "accepted"
    assert buffer.offer(frame(1.0)) == "accepted"
    assert buffer.offer(frame(1.5)) == "full"
    assert len(buffer.keyframes) == 3
    assert buffer.counts == {"accepted": 3, "too_close": 1, "blurry": 1, "full": 1}
