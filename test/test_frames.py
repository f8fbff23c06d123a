"""Frame pairing by stamp and keyframe selection."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from langscene_core.capture.frames import (
    Frame,
    FrameSynchronizer,
    synchronizer_for,
    tf_pose_lookup,
    transform_buffer_for,
)
from langscene_core.capture.keyframes import KeyframeBuffer, pose_distance, sharpness
from langscene_core.config import KeyframeConfig, NodeConfig
from langscene_core.geometry.camera import Intrinsics, look_at
from langscene_core.geometry.transforms import TransformBuffer
from langscene_core.sim.trajectory import orbit_pose

K = Intrinsics.from_hfov(8, 6, 60.0)
RNG = np.random.default_rng(0)
TEXTURED = RNG.integers(0, 255, (6, 8, 3), dtype=np.uint8)


def pose_at(x: float) -> np.ndarray:
    return look_at(np.array([x, -1.0, 0.5]), np.zeros(3))


def test_image_waits_for_its_pose_then_pairs_with_the_interpolated_pose():
    sync = FrameSynchronizer(max_pose_gap_s=0.25)
    assert sync.add_pose(0.9, pose_at(0.0)) == []
    assert sync.add_image(1.0, TEXTURED) == []  # no pose after 1.0 yet
    assert sync.add_pose(1.1, pose_at(1.0)) == []  # no camera_info yet
    frames = sync.set_intrinsics(K)
    assert len(frames) == 1 and frames[0].stamp == 1.0 and frames[0].intrinsics == K
    np.testing.assert_allclose(frames[0].cam_to_world[:3, 3], pose_at(0.5)[:3, 3], atol=1e-12)
    assert frames[0].depth is None
    assert sync.add_image(1.1, TEXTURED)[0].cam_to_world is not None  # stamped at a pose: that pose
    assert sync.dropped == {}


def test_once_depth_flows_images_wait_for_depth():
    sync = FrameSynchronizer(tolerance_s=0.01, intrinsics=K)
    depth = np.ones((6, 8), np.float32)
    sync.add_depth(0.9, depth)
    sync.add_pose(1.0, pose_at(0.0))
    assert sync.add_image(1.0, TEXTURED) == []  # depth stream exists, no depth at 1.0 yet
    frames = sync.add_depth(1.0, depth * 2)
    assert len(frames) == 1 and frames[0].depth[0, 0] == 2.0


def test_an_image_overtaking_the_first_depth_waits_for_it():
    """The race of #20: the first image handled before the first depth (separate subscriptions) waits
    up to depth_wait_s of stamps for its partner instead of becoming a keyframe without depth."""
    sync = FrameSynchronizer(tolerance_s=0.01, intrinsics=K, depth_wait_s=0.5)
    sync.add_pose(1.0, pose_at(0.0))
    sync.add_pose(1.1, pose_at(0.1))
    assert sync.add_image(1.0, TEXTURED) == []  # no depth yet: it may still come
    frames = sync.add_depth(1.0, np.full((6, 8), 2.0, np.float32))
    assert len(frames) == 1 and frames[0].depth[0, 0] == 2.0
    # with no wait (the old behaviour) the same order gives a frame without depth
    eager = FrameSynchronizer(tolerance_s=0.01, intrinsics=K, depth_wait_s=0.0)
    eager.add_pose(1.0, pose_at(0.0))
    assert eager.add_image(1.0, TEXTURED)[0].depth is None


def test_an_rgb_only_camera_waits_once_then_goes_on_without_depth():
    sync = FrameSynchronizer(intrinsics=K, depth_wait_s=0.5, max_pose_gap_s=1.0)
    for t in np.arange(0.0, 2.01, 0.1):
        sync.add_pose(float(t), pose_at(float(t)))
    out = [len(sync.add_image(t, TEXTURED)) for t in (0.0, 0.2, 0.4)]
    assert out == [0, 0, 0] and sync.pending == 3
    frames = sync.add_image(0.5, TEXTURED)  # 0.5 s past the first image, no depth: RGB-only
    assert [f.stamp for f in frames] == [0.0, 0.2, 0.4, 0.5] and all(f.depth is None for f in frames)
    assert len(sync.add_image(0.6, TEXTURED)) == 1  # no more waiting
    assert sync.dropped == {}
    with pytest.raises(ValueError, match="depth_wait_s"):
        FrameSynchronizer(depth_wait_s=6.0, max_wait_s=5.0)


def test_with_depth_required_the_first_image_waits_for_its_depth():
    """require_depth: an image whose pose is there but whose depth is not yet waits (the first image
    too), and with no depth stream at all it is dropped as no_depth once the stream moved max_wait_s on."""
    sync = FrameSynchronizer(tolerance_s=0.01, intrinsics=K, require_depth=True, max_wait_s=1.0)
    sync.add_pose(1.0, pose_at(0.0))
    assert sync.add_image(1.0, TEXTURED) == [] and sync.pending == 1
    frames = sync.add_depth(1.0, np.ones((6, 8), np.float32))
    assert len(frames) == 1 and frames[0].depth is not None
    rgb_only = FrameSynchronizer(intrinsics=K, require_depth=True, max_wait_s=1.0)
    for t in (1.0, 2.5):
        rgb_only.add_pose(t, pose_at(0.0))
        assert rgb_only.add_image(t, TEXTURED) == []
    assert rgb_only.dropped == {"no_depth": 1} and rgb_only.pending == 1


def test_unpairable_images_are_dropped_and_counted():
    sync = FrameSynchronizer(tolerance_s=0.01, max_wait_s=5.0, max_pose_gap_s=0.2)
    sync.add_image(0.0, TEXTURED)
    sync.add_image(6.0, TEXTURED)  # image 0 waited too long for camera_info
    assert sync.dropped == {"no_camera_info": 1}
    sync.set_intrinsics(K)
    sync.add_pose(6.5, pose_at(0.0))  # image 6.0 lies before the first pose: it will never get one
    assert sync.dropped == {"no_camera_info": 1, "no_pose": 1}
    sync.add_image(6.7, TEXTURED)
    sync.add_pose(7.0, pose_at(0.0))  # 6.5 and 7.0 are too far apart to interpolate 6.7
    assert sync.dropped == {"no_camera_info": 1, "no_pose": 1, "pose_gap": 1}
    assert sync.add_image(7.0, TEXTURED)[0].stamp == 7.0
    sync.add_pose(-10.0, pose_at(0.0))  # far older than the stream: its clock jumped back
    assert sync.dropped["time_jump_back"] == 1


def moving_camera(t: float) -> np.ndarray:
    """cam_to_world of a camera moving at constant velocity and turning at a constant rate about a
    fixed axis: what linear interpolation and slerp reproduce exactly between any two poses."""
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_rotvec(np.array([0.2, -0.4, 0.9]) * t).as_matrix() @ pose_at(0.0)[:3, :3]
    pose[:3, 3] = [0.3 * t, -1.0 + 0.1 * t, 0.5 - 0.05 * t]
    return pose


@pytest.mark.parametrize("pose_rate_hz", [10.0, 30.0])
def test_images_inside_a_pose_stream_all_pair_with_their_exact_pose(pose_rate_hz):
    """30 Hz images, poses at 10 or 30 Hz offset 17 ms from the images, arriving interleaved by stamp."""
    sync = FrameSynchronizer(intrinsics=K, max_pose_gap_s=0.2)
    image_stamps = 1.0 + np.arange(60) / 30.0
    pose_stamps = 1.0 - 0.017 + np.arange(int(2.2 * pose_rate_hz)) / pose_rate_hz
    events = sorted([(t, "image") for t in image_stamps] + [(t, "pose") for t in pose_stamps])
    frames = []
    for t, kind in events:
        frames += sync.add_image(t, TEXTURED) if kind == "image" else sync.add_pose(t, moving_camera(t))
    assert [f.stamp for f in frames] == list(image_stamps) and sync.dropped == {}
    for frame in frames:
        np.testing.assert_allclose(frame.cam_to_world, moving_camera(frame.stamp), atol=1e-9)


def test_an_orbiting_camera_gets_poses_within_1mm_and_0_1_degree_from_a_10hz_stream():
    """The world datasets' orbit (0.6 m radius) at 30 deg/s; poses at 10 Hz offset 17 ms from 30 Hz images."""
    truth = lambda t: orbit_pose(30.0 * t, 35.0, 0.6)  # noqa: E731
    sync = FrameSynchronizer(intrinsics=K)
    image_stamps = np.arange(60) / 30.0
    events = sorted([(t, "image") for t in image_stamps] + [(t - 0.017, "pose") for t in np.arange(22) / 10.0])
    frames = []
    for t, kind in events:
        frames += sync.add_image(t, TEXTURED) if kind == "image" else sync.add_pose(t, truth(t))
    assert len(frames) == len(image_stamps) and sync.dropped == {}
    for frame in frames:
        moved, turned = pose_distance(frame.cam_to_world, truth(frame.stamp))
        assert moved < 1e-3 and turned < 0.1, (frame.stamp, moved, turned)


def test_pose_from_a_transform_buffer_waits_for_tf_and_counts_unknown_frames():
    buffer = TransformBuffer()
    camera_in_base = look_at(np.array([0.1, 0.0, 0.4]), np.array([1.0, 0.0, 0.0]))
    buffer.set_transform("base_link", "camera_optical", 0.0, camera_in_base, static=True)
    sync = FrameSynchronizer(intrinsics=K, max_wait_s=1.0, pose_lookup=tf_pose_lookup(buffer, "map"))
    buffer.set_transform("map", "base_link", 0.9, moving_camera(0.9))
    sync.add_image(0.5, TEXTURED, "camera_optical")  # before the transform's data: dropped at once
    assert sync.dropped == {"no_pose": 1}
    assert sync.add_image(1.0, TEXTURED, "camera_optical") == []  # no map -> base_link at 1.0 yet
    assert sync.add_image(1.05, TEXTURED, "camera_left") == []  # not in the tree (yet)
    buffer.set_transform("map", "base_link", 1.1, moving_camera(1.1))
    (frame,) = sync.retry()
    np.testing.assert_allclose(frame.cam_to_world, moving_camera(1.0) @ camera_in_base, atol=1e-9)
    sync.add_image(2.5, TEXTURED, "camera_optical")  # the unknown frame's image has waited too long
    assert sync.dropped == {"no_pose": 1, "pose_unknown_frame": 1}
    overridden = FrameSynchronizer(intrinsics=K, pose_lookup=tf_pose_lookup(buffer, "map", "base_link"))
    np.testing.assert_allclose(overridden.add_image(1.1, TEXTURED, "")[0].cam_to_world, moving_camera(1.1), atol=1e-9)


def test_out_of_order_inputs_are_dropped_and_a_clock_jump_back_starts_afresh():
    sync = FrameSynchronizer(tolerance_s=0.01, max_wait_s=5.0, intrinsics=K)
    depth = np.ones((6, 8), np.float32)
    for t in (100.0, 100.1):
        sync.add_pose(t, pose_at(t - 100.0))
        sync.add_depth(t, depth)
        assert len(sync.add_image(t, TEXTURED)) == 1
    assert sync.add_image(100.05, TEXTURED) == [] and sync.add_image(100.1, TEXTURED) == []  # late, repeated
    assert sync.add_depth(99.0, depth) == []
    assert sync.dropped == {"image_out_of_order": 2, "depth_out_of_order": 1}
    # the bag played again from its start: stamps 90 s back, the old pending data and poses are gone
    sync.add_pose(10.0, pose_at(0.0))
    sync.add_depth(10.0, depth)
    frames = sync.add_image(10.0, TEXTURED)
    assert [f.stamp for f in frames] == [10.0]
    assert sync.dropped["time_jump_back"] == 1


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


def test_synchronizer_for_each_pose_source():
    buffer = TransformBuffer()
    buffer.set_transform("odom", "camera_optical", 0.0, pose_at(0.0), static=True)
    tf = synchronizer_for(NodeConfig(pose_source="tf", scene_frame="odom", depth_wait_s=0.0), buffer)
    tf.set_intrinsics(K)
    np.testing.assert_allclose(tf.add_image(1.0, TEXTURED, "camera_optical")[0].cam_to_world, pose_at(0.0), atol=1e-12)
    topic = synchronizer_for(NodeConfig(pose_source="topic", max_pose_gap_s=0.5, depth_wait_s=0.0), buffer)
    topic.set_intrinsics(K)
    for t in (0.0, 0.4, 1.0):
        topic.add_pose(t, moving_camera(t))
    assert len(topic.add_image(0.2, TEXTURED, "camera_optical")) == 1  # 0.4 s apart: interpolated
    assert topic.add_image(0.7, TEXTURED) == [] and topic.dropped == {"pose_gap": 1}  # 0.6 s apart
    with pytest.raises(ValueError, match="node.pose_source"):
        synchronizer_for(NodeConfig(pose_source="odometry"), buffer)
    assert transform_buffer_for(NodeConfig(tf_cache_s=3.0)).cache_s == 3.0
    assert synchronizer_for(NodeConfig(), buffer).depth_wait_s == NodeConfig().depth_wait_s > 0
    assert synchronizer_for(NodeConfig(), buffer, require_depth=True).require_depth
