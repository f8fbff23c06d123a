"""The transform buffer against analytic chains: map -> odom -> base_link -> tool -> camera_optical."""

import threading

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from langscene_core.geometry.transforms import (
    ConnectivityError,
    ExtrapolationError,
    GapError,
    InvalidTransformError,
    LoopError,
    OldDataError,
    TransformBuffer,
    TransformError,
    UnknownFrameError,
    make_transform,
    slerp,
    split_transform,
    transform_points,
)


def rigid(axis, angle: float, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_rotvec(np.asarray(axis, float) / np.linalg.norm(axis) * angle).as_matrix()
    matrix[:3, 3] = translation
    return matrix


# Closed forms: each dynamic edge moves with constant velocity and turns at a constant rate about a
# fixed axis, which linear interpolation and slerp reproduce exactly between any two samples.
def odom_in_map(t: float) -> np.ndarray:  # slow drift correction
    return rigid([0, 0, 1], 0.01 * t, [0.02 * t, -0.01 * t, 0.0])


def base_in_odom(t: float) -> np.ndarray:  # driving and turning
    return rigid([0, 0, 1], 0.3 * t, [1.0 + 0.5 * t, 0.2 * t, 0.0])


def tool_in_base(t: float) -> np.ndarray:  # an arm sweeping about a tilted axis
    return rigid([0.3, -0.5, 1.0], 0.8 * t, [0.4, 0.1 * t, 0.6 - 0.05 * t])


CAMERA_IN_TOOL = rigid([1, 1, 0], 2.0, [0.0, 0.05, 0.1])  # the camera mount (static)
STAMPS = np.arange(0.0, 2.0001, 0.1)  # 10 Hz


def chain_buffer(**kwargs) -> TransformBuffer:
    buffer = TransformBuffer(**kwargs)
    buffer.set_transform("tool", "camera_optical", 0.0, CAMERA_IN_TOOL, static=True)
    for t in STAMPS:
        buffer.set_transform("map", "odom", t, odom_in_map(t))
        buffer.set_transform("odom", "base_link", t, base_in_odom(t))
        buffer.set_transform("base_link", "tool", t, tool_in_base(t))
    return buffer


def camera_in_map(t: float) -> np.ndarray:
    return odom_in_map(t) @ base_in_odom(t) @ tool_in_base(t) @ CAMERA_IN_TOOL


def test_chain_at_sample_and_mid_stamps_matches_the_closed_form():
    buffer = chain_buffer()
    for t in [0.0, 0.1, 1.0, 0.05, 0.537, 1.2345, 1.99, 2.0]:
        np.testing.assert_allclose(buffer.lookup("map", "camera_optical", t), camera_in_map(t), atol=1e-9)
        np.testing.assert_allclose(
            buffer.lookup("camera_optical", "map", t), np.linalg.inv(camera_in_map(t)), atol=1e-9
        )


def test_lookup_through_a_common_ancestor_below_the_root():
    buffer = chain_buffer()
    wheel_in_base = rigid([0, 1, 0], 0.0, [0.0, 0.25, -0.1])
    buffer.set_transform("base_link", "wheel", 0.0, wheel_in_base, static=True)
    t = 0.75
    expected = np.linalg.inv(wheel_in_base) @ tool_in_base(t) @ CAMERA_IN_TOOL  # wheel_from_camera
    np.testing.assert_allclose(buffer.lookup("wheel", "camera_optical", t), expected, atol=1e-9)
    np.testing.assert_allclose(buffer.lookup("base_link", "base_link", t), np.eye(4))


def test_static_edges_hold_at_any_stamp_and_latest_is_the_newest_common_time():
    buffer = chain_buffer()
    np.testing.assert_allclose(buffer.lookup("tool", "camera_optical", 1e6), CAMERA_IN_TOOL, atol=1e-12)
    buffer.set_transform("map", "odom", 2.1, odom_in_map(2.1))  # one edge runs ahead of the others
    np.testing.assert_allclose(buffer.lookup("map", "camera_optical"), camera_in_map(2.0), atol=1e-9)
    np.testing.assert_allclose(buffer.lookup("map", "odom"), odom_in_map(2.1), atol=1e-9)
    assert (buffer.latest_stamp("map", "camera_optical"), buffer.latest_stamp("map", "odom")) == (2.0, 2.1)
    assert buffer.latest_stamp("tool", "camera_optical") == 0.0  # static: tf2's "latest"


@pytest.mark.parametrize("angle", [3.0, 0.5, 1e-3, 1e-8, 0.0])
def test_slerp_matches_scipy_on_both_quaternion_signs(angle):
    rng = np.random.default_rng(int(angle * 1000))
    start = Rotation.random(random_state=rng)
    end = Rotation.from_rotvec(angle * np.array([0.6, -0.8, 0.0])) * start
    for sign in (1.0, -1.0):  # q and -q are the same rotation: the shorter arc either way
        for fraction in (0.0, 0.25, 0.5, 0.9, 1.0):
            mine = Rotation.from_quat(slerp(start.as_quat(), sign * end.as_quat(), fraction))
            theirs = Slerp([0.0, 1.0], Rotation.concatenate([start, end]))([fraction])[0]
            assert (mine.inv() * theirs).magnitude() < 1e-12


def test_translation_and_quaternion_input_equals_the_matrix():
    q = Rotation.from_rotvec([0.1, 0.2, 0.3]).as_quat()
    buffer = TransformBuffer()
    buffer.set_transform("a", "b", 1.0, translation=[1.0, 2.0, 3.0], quaternion=q * 1.005)  # normalised
    expected = make_transform([1.0, 2.0, 3.0], q)
    np.testing.assert_allclose(buffer.lookup("a", "b", 1.0), expected, atol=1e-12)
    t, q_back = split_transform(expected)
    np.testing.assert_allclose(make_transform(t, q_back), expected, atol=1e-12)
    np.testing.assert_allclose(transform_points(expected, np.zeros((1, 3)))[0], [1.0, 2.0, 3.0])


def test_unknown_frame_and_broken_chain_name_the_frames():
    buffer = chain_buffer()
    with pytest.raises(UnknownFrameError, match="'gripper'"):
        buffer.lookup("map", "gripper", 1.0)
    with pytest.raises(UnknownFrameError, match="'gripper'"):
        buffer.lookup("gripper", "gripper", 1.0)
    buffer.set_transform("world", "table", 0.0, np.eye(4), static=True)
    with pytest.raises(ConnectivityError, match="roots 'world' and 'map'") as caught:
        buffer.lookup("map", "table", 1.0)
    assert caught.value.reason == "no_chain" and isinstance(caught.value, LookupError)


def test_extrapolation_is_refused_beyond_the_tolerance():
    strict = chain_buffer()
    with pytest.raises(ExtrapolationError) as future:
        strict.lookup("map", "camera_optical", 2.01)
    assert future.value.future and future.value.reason == "extrapolation"
    with pytest.raises(ExtrapolationError) as past:
        strict.lookup("map", "camera_optical", -0.01)
    assert not past.value.future
    tolerant = chain_buffer(max_extrapolation_s=0.02)
    np.testing.assert_allclose(tolerant.lookup("map", "camera_optical", 2.01), camera_in_map(2.0), atol=1e-9)
    with pytest.raises(ExtrapolationError):
        tolerant.lookup("map", "camera_optical", 2.03)


def test_gap_between_samples_beyond_max_gap_is_refused():
    buffer = TransformBuffer(max_gap_s=0.15)
    for t in (0.0, 0.1, 0.4):
        buffer.set_transform("map", "camera", t, base_in_odom(t))
    np.testing.assert_allclose(buffer.lookup("map", "camera", 0.05), base_in_odom(0.05), atol=1e-9)
    with pytest.raises(GapError, match="0.300 s apart"):
        buffer.lookup("map", "camera", 0.2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"translation": [0.0, np.nan, 0.0], "quaternion": [0, 0, 0, 1]},
        {"translation": [0.0, 0.0, 0.0], "quaternion": [0, 0, 0, 2.0]},
        {"translation": [0.0, 0.0, 0.0], "quaternion": [0, 0, 0, 0]},
        {"matrix": np.diag([1.0, 1.0, -1.0, 1.0])},  # a reflection
        {"matrix": np.diag([1.1, 1.0, 1.0, 1.0])},  # a scale
    ],
)
def test_invalid_transforms_are_rejected_and_leave_the_buffer_unchanged(kwargs):
    buffer = chain_buffer()
    with pytest.raises(InvalidTransformError):
        buffer.set_transform("map", "odom", 3.0, **kwargs)
    with pytest.raises(ExtrapolationError):
        buffer.lookup("map", "odom", 3.0)


def test_a_loop_is_refused():
    buffer = chain_buffer()
    with pytest.raises(LoopError, match="loop"):
        buffer.set_transform("camera_optical", "map", 0.0, np.eye(4))
    with pytest.raises(LoopError):
        buffer.set_transform("odom", "odom", 0.0, np.eye(4))
    np.testing.assert_allclose(buffer.lookup("map", "camera_optical", 1.0), camera_in_map(1.0), atol=1e-9)


def test_cache_is_bounded_in_time_and_count_and_out_of_order_samples_are_sorted():
    buffer = TransformBuffer(cache_s=1.0, max_samples=8)
    for t in [0.0, 0.2, 0.1, 0.4, 0.3]:  # out of order within the cache
        buffer.set_transform("map", "base_link", t, base_in_odom(t))
    np.testing.assert_allclose(buffer.lookup("map", "base_link", 0.25), base_in_odom(0.25), atol=1e-9)
    for t in np.arange(0.5, 3.0, 0.1):
        buffer.set_transform("map", "base_link", t, base_in_odom(t))
    with pytest.raises(ExtrapolationError) as past:  # 8 samples at 10 Hz: 0.7 s kept
        buffer.lookup("map", "base_link", 2.1)
    assert not past.value.future
    np.testing.assert_allclose(buffer.lookup("map", "base_link", 2.25), base_in_odom(2.25), atol=1e-9)
    with pytest.raises(OldDataError):
        buffer.set_transform("map", "base_link", 1.0, np.eye(4))


def test_reparenting_a_frame_starts_a_new_edge():
    buffer = chain_buffer()
    base_in_map = rigid([0, 0, 1], 0.5, [3.0, 0.0, 0.0])
    buffer.set_transform("map", "base_link", 1.0, base_in_map)  # base_link moves from odom to map
    np.testing.assert_allclose(buffer.lookup("map", "base_link", 1.0), base_in_map, atol=1e-12)
    np.testing.assert_allclose(
        buffer.lookup("odom", "base_link", 1.0), np.linalg.inv(odom_in_map(1.0)) @ base_in_map, atol=1e-9
    )
    with pytest.raises(ExtrapolationError):  # the history under the old parent is gone
        buffer.lookup("map", "base_link", 0.5)


def test_concurrent_writers_and_readers():
    buffer = TransformBuffer(cache_s=0.5, max_samples=64)
    buffer.set_transform("base_link", "camera", 0.0, CAMERA_IN_TOOL, static=True)
    errors: list[BaseException] = []

    def write():
        for i in range(2000):
            buffer.set_transform("map", "base_link", i * 0.01, base_in_odom(i * 0.01))

    def read():
        for _ in range(2000):
            try:
                matrix = buffer.lookup("map", "camera")
                np.testing.assert_allclose(matrix[:3, :3].T @ matrix[:3, :3], np.eye(3), atol=1e-9)
            except TransformError:
                pass  # nothing written yet
            except BaseException as exc:  # noqa: BLE001 - any other failure is the test's finding
                errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    np.testing.assert_allclose(buffer.lookup("map", "camera"), base_in_odom(19.99) @ CAMERA_IN_TOOL, atol=1e-9)
