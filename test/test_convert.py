"""Round trips of the message conversions, with hypothesis-generated arrays and layouts."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CompressedImage

from langscene_core.geometry.transforms import make_transform
from langscene_core.query.objects import pack_rgb, unpack_rgb
from langscene_ros import convert

sizes = st.tuples(st.integers(1, 9), st.integers(1, 9))


def padded(msg, extra: int, big_endian: bool):
    """The same image with `extra` padding bytes per row and the given byte order."""
    scalar, channels = convert.IMAGE_ENCODINGS[msg.encoding]
    array = convert.image_to_numpy(msg).reshape(msg.height, msg.width * channels)
    raw = array.astype(np.dtype(scalar).newbyteorder(">" if big_endian else "<")).view(np.uint8)
    rows = np.concatenate([raw, np.full((msg.height, extra), 0xAB, np.uint8)], axis=1)
    msg.data, msg.step, msg.is_bigendian = rows.tobytes(), rows.shape[1], int(big_endian)
    return msg


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    encoding=st.sampled_from(sorted(convert.IMAGE_ENCODINGS)),
    size=sizes,
    extra=st.integers(0, 7),
    big_endian=st.booleans(),
)
def test_image_round_trip_honours_step_and_endianness(data, encoding, size, extra, big_endian):
    scalar, channels = convert.IMAGE_ENCODINGS[encoding]
    shape = size if channels == 1 else (*size, channels)
    elements = st.floats(-1e6, 1e6, width=32) if scalar is np.float32 else None
    array = data.draw(hnp.arrays(scalar, shape, elements=elements))
    msg = padded(convert.numpy_to_image(array, encoding), extra, big_endian)
    np.testing.assert_array_equal(convert.image_to_numpy(msg), array)


def test_bgr_mono_and_alpha_images_become_rgb():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(convert.image_to_rgb(convert.numpy_to_image(rgb[..., ::-1], "bgr8")), rgb)
    grey = rgb[..., 0]
    np.testing.assert_array_equal(convert.image_to_rgb(convert.numpy_to_image(grey, "mono8")), np.stack([grey] * 3, -1))
    alpha = np.full((4, 5, 1), 7, np.uint8)  # the ZED's and the Azure Kinect's bgra8
    np.testing.assert_array_equal(convert.image_to_rgb(convert.numpy_to_image(np.dstack([rgb, alpha]), "rgba8")), rgb)
    bgra = np.dstack([rgb[..., ::-1], alpha])
    np.testing.assert_array_equal(convert.image_to_rgb(convert.numpy_to_image(bgra, "bgra8")), rgb)


def test_depth_16uc1_is_millimetres_and_zero_is_missing():
    mm = np.array([[0, 1000], [1500, 65535]], dtype=np.uint16)
    depth = convert.image_to_depth(convert.numpy_to_image(mm, "16UC1"))
    assert np.isnan(depth[0, 0])
    np.testing.assert_allclose(depth[~np.isnan(depth)], [1.0, 1.5, 65.535], rtol=1e-6)
    metres = np.array([[0.5, np.nan]], dtype=np.float32)
    back = convert.image_to_depth(convert.depth_to_image(metres))
    assert back[0, 0] == 0.5 and np.isnan(back[0, 1])


def test_bad_images_are_rejected_with_a_reason():
    msg = convert.numpy_to_image(np.zeros((4, 4, 3), np.uint8), "rgb8")
    msg.encoding = "yuv422"
    with pytest.raises(convert.ConversionError, match="yuv422"):
        convert.image_to_numpy(msg)
    msg = convert.numpy_to_image(np.zeros((4, 4, 3), np.uint8), "rgb8")
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(convert.ConversionError, match="bytes"):
        convert.image_to_numpy(msg)
    msg = convert.numpy_to_image(np.zeros((4, 4), np.uint16), "16UC1")
    with pytest.raises(convert.ConversionError, match="colour"):
        convert.image_to_rgb(msg)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 50), seed=st.integers(0, 2**31 - 1))
def test_pointcloud2_round_trip(n, seed):
    rng = np.random.default_rng(seed)
    points = np.zeros(
        n, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("relevancy", "f4"), ("rgb", "f4"), ("id", "u2")]
    )
    for name in ("x", "y", "z", "relevancy"):
        points[name] = rng.normal(size=n)
    colors = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    points["rgb"] = pack_rgb(colors / 255.0)
    points["id"] = rng.integers(0, 65535, n)
    back = convert.pointcloud2_to_numpy(convert.numpy_to_pointcloud2(points))
    assert back.dtype.names == points.dtype.names
    for name in ("x", "y", "z", "relevancy", "id"):
        np.testing.assert_array_equal(back[name], points[name])
    np.testing.assert_array_equal(unpack_rgb(back["rgb"]), colors)


def test_pointcloud2_big_endian_wire_format():
    points = np.zeros(3, dtype=[("x", ">f4"), ("y", ">f4")])
    points["x"], points["y"] = [1, 2, 3], [4, 5, 6]
    msg = convert.numpy_to_pointcloud2(points.astype([("x", "f4"), ("y", "f4")]))
    msg.data, msg.is_bigendian = points.tobytes(), True
    back = convert.pointcloud2_to_numpy(msg)
    np.testing.assert_array_equal(back["x"], [1, 2, 3])
    np.testing.assert_array_equal(back["y"], [4, 5, 6])


@settings(max_examples=60, deadline=None)
@given(
    quat=hnp.arrays(np.float64, 4, elements=st.floats(-1, 1)).filter(lambda q: np.linalg.norm(q) > 0.1),
    t=hnp.arrays(np.float64, 3, elements=st.floats(-100, 100)),
)
def test_pose_matrix_round_trip(quat, t):
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat(quat / np.linalg.norm(quat)).as_matrix()
    matrix[:3, 3] = t
    np.testing.assert_allclose(convert.pose_to_matrix(convert.matrix_to_pose(matrix)), matrix, atol=1e-9)


def test_many_poses_convert_at_once_like_one_by_one():
    rotations = Rotation.random(5, random_state=0).as_matrix()
    matrices = np.tile(np.eye(4), (5, 1, 1))
    matrices[:, :3, :3], matrices[:, :3, 3] = rotations, np.arange(15).reshape(5, 3)
    poses = convert.matrices_to_poses(matrices)
    assert len(poses) == 5 and convert.matrices_to_poses(np.zeros((0, 4, 4))) == []
    for pose, matrix in zip(poses, matrices):
        np.testing.assert_allclose(convert.pose_to_matrix(pose), matrix, atol=1e-9)


@pytest.mark.parametrize(
    ("w", "x", "match"),
    [(0.0, 0.0, "norm 0"), (float("nan"), 0.0, "NaN"), (1.0, float("inf"), "NaN or infinite"), (1.0, 0.3, "norm 1.04")],
)
def test_zero_non_unit_and_non_finite_poses_are_rejected(w, x, match):
    pose = convert.matrix_to_pose(np.eye(4))
    pose.orientation.w, pose.position.x = w, 0.0
    pose.orientation.x = x
    with pytest.raises(convert.ConversionError, match=match):
        convert.pose_to_matrix(pose)


def test_a_nearly_unit_quaternion_is_normalised():
    pose = convert.matrix_to_pose(np.eye(4))
    pose.orientation.w = 1.005
    np.testing.assert_allclose(convert.pose_to_matrix(pose), np.eye(4), atol=1e-12)


@pytest.mark.parametrize(
    ("array", "encoding", "match"),
    [
        (np.zeros((4, 4), np.uint16), "16UC1", "no measurement"),
        (np.full((4, 4), np.nan, np.float32), "32FC1", "no measurement"),
        (np.full((4, 4), 2, np.uint16), "16UC1", "wrong unit"),  # metres written as millimetres
        (np.full((4, 4), 850.0, np.float32), "32FC1", "wrong unit"),  # millimetres written as metres
    ],
)
def test_depth_without_measurements_or_in_the_wrong_unit_is_rejected(array, encoding, match):
    with pytest.raises(convert.ConversionError, match=match):
        convert.image_to_depth(convert.numpy_to_image(array, encoding))


@pytest.mark.parametrize(("fx", "match"), [(0.0, "no focal length"), (float("nan"), "NaN"), (float("inf"), "NaN")])
def test_camera_info_without_a_finite_focal_length_is_rejected(fx, match):
    from langscene_core.geometry.camera import Intrinsics

    msg = convert.intrinsics_to_camera_info(Intrinsics(fx=50.0, fy=50.0, cx=32.0, cy=24.0, width=64, height=48))
    k = list(msg.k)
    k[0] = fx
    msg.k = k
    with pytest.raises(convert.ConversionError, match=match):
        convert.camera_info_to_intrinsics(msg)


def test_camera_info_is_the_rectified_camera_p():
    """A calibrated camera's rectified image has P's focal length and centre, not K's (as image_geometry
    reads it); without P, K is that camera only when there is no distortion."""
    from sensor_msgs.msg import CameraInfo

    k = [580.5, 0.0, 315.3, 0.0, 576.6, 247.5, 0.0, 0.0, 1.0]
    p = [587.7, 0.0, 316.8, 0.0, 0.0, 585.7, 248.3, 0.0, 0.0, 0.0, 1.0, 0.0]
    d = [0.134, -0.312, 0.0023, 0.0031, 0.0]
    intrinsics = convert.camera_info_to_intrinsics(CameraInfo(width=640, height=480, k=k, p=p, d=d))
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (587.7, 585.7, 316.8, 248.3)
    intrinsics = convert.camera_info_to_intrinsics(CameraInfo(width=640, height=480, k=k))  # no P, no D
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (580.5, 576.6, 315.3, 247.5)
    with pytest.raises(convert.ConversionError, match="distortion .* no projection matrix P"):
        convert.camera_info_to_intrinsics(CameraInfo(width=640, height=480, k=k, d=d, distortion_model="plumb_bob"))
    with pytest.raises(convert.ConversionError, match="P has no finite focal length"):
        convert.camera_info_to_intrinsics(CameraInfo(width=640, height=480, k=k, p=[float("nan")] + p[1:]))


# Any message a client may send: the fields a publisher fills, with values in their wire types' ranges.
_IMAGE_MESSAGES = st.builds(
    lambda encoding, height, width, step, big, data: _image(encoding, height, width, step, big, data),
    encoding=st.sampled_from([*convert.IMAGE_ENCODINGS, "yuv422", "", "8UC3", "32FC3"]),
    height=st.integers(0, 12),
    width=st.integers(0, 12),
    step=st.integers(0, 80),
    big=st.booleans(),
    data=st.binary(max_size=1200),
)


def _image(encoding, height, width, step, big, data):
    from sensor_msgs.msg import Image

    return Image(encoding=encoding, height=height, width=width, step=step, is_bigendian=big, data=data)


@settings(max_examples=300, deadline=None)
@given(msg=_IMAGE_MESSAGES)
def test_any_image_message_converts_or_gives_a_conversion_error(msg):
    """Fuzzing: whatever a client publishes, the node gets an array of the declared size or a reason."""
    for to_array, channels in ((convert.image_to_rgb, 3), (convert.image_to_depth, 0)):
        try:
            array = to_array(msg)
        except convert.ConversionError as exc:
            assert str(exc)
            continue
        assert array.shape[:2] == (msg.height, msg.width)
        if channels:
            assert array.shape == (msg.height, msg.width, 3) and array.dtype == np.uint8
        else:
            assert array.dtype == np.float32 and np.all(np.isnan(array) | (array > 0))


@settings(max_examples=200, deadline=None)
@given(
    k=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=9, max_size=9),
    p=st.one_of(
        st.just([0.0] * 12), st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=12, max_size=12)
    ),
    d=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8),
    size=st.tuples(st.integers(0, 5000), st.integers(0, 5000)),
    quat=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=4, max_size=4),
)
def test_any_camera_info_or_pose_converts_or_gives_a_conversion_error(k, p, d, size, quat):
    from geometry_msgs.msg import Pose, Quaternion
    from sensor_msgs.msg import CameraInfo

    try:
        intrinsics = convert.camera_info_to_intrinsics(CameraInfo(k=k, p=p, d=d, width=size[0], height=size[1]))
    except convert.ConversionError as exc:
        assert str(exc)
    else:
        assert intrinsics.fx > 0 and intrinsics.fy > 0 and np.isfinite(intrinsics.K).all()
    try:
        matrix = convert.pose_to_matrix(Pose(orientation=Quaternion(x=quat[0], y=quat[1], z=quat[2], w=quat[3])))
    except convert.ConversionError as exc:
        assert str(exc)
    else:
        assert np.isfinite(matrix).all()
        np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-9)


def test_stamps_and_transforms_round_trip():
    stamp = convert.seconds_to_stamp(1733300000.123456789)
    assert stamp.sec == 1733300000 and abs(stamp.nanosec - 123456789) < 500  # float64: 0.24 us steps here
    assert convert.stamp_to_seconds(convert.seconds_to_stamp(12.999999999)) == 12.999999999
    assert convert.seconds_to_stamp(0.9999999999).sec == 1  # rounding carries into the seconds
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_rotvec([0.3, -0.2, 0.9]).as_matrix()
    matrix[:3, 3] = [1.0, -2.0, 0.5]
    msg = convert.matrix_to_transform_stamped(matrix, "map", "base_link", stamp)
    assert (msg.header.frame_id, msg.child_frame_id, msg.header.stamp) == ("map", "base_link", stamp)
    translation, quaternion = convert.transform_to_parts(msg.transform)
    np.testing.assert_allclose(make_transform(translation, quaternion), matrix, atol=1e-12)


# ------------------------------------------------------------------ compressed transports (#20)
def test_compressed_colour_round_trips():
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    png = convert.rgb_to_compressed(rgb, "png")
    assert png.format == "rgb8; png compressed rgb8" and np.array_equal(convert.compressed_to_rgb(png), rgb)
    smooth = np.broadcast_to(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], (30, 40, 3))
    jpeg = convert.compressed_to_rgb(convert.rgb_to_compressed(smooth, "jpeg"))
    assert jpeg.shape == (30, 40, 3) and np.abs(jpeg.astype(int) - smooth).max() <= 8
    assert np.array_equal(convert.compressed_to_rgb(CompressedImage(format="png", data=png.data)), rgb)
    with pytest.raises(convert.ConversionError, match="unsupported compressed image format 'tiff'"):
        convert.compressed_to_rgb(CompressedImage(format="tiff", data=png.data))
    with pytest.raises(convert.ConversionError, match="says jpeg but holds png"):
        convert.compressed_to_rgb(CompressedImage(format="jpeg", data=png.data))
    with pytest.raises(convert.ConversionError, match="does not decode"):
        convert.compressed_to_rgb(CompressedImage(format="png", data=b"\x89PNG garbage"))


def test_compressed_depth_16uc1_decodes_to_the_source_exactly():
    mm = np.random.default_rng(1).integers(0, 4000, (48, 64)).astype(np.uint16)
    msg = convert.depth_mm_to_compressed(mm)
    data = bytes(msg.data)
    assert msg.format == "16UC1; compressedDepth png" and data[:12] == bytes(12) and data[12:16] == b"\x89PNG"
    decoded = convert.compressed_depth_to_depth(msg)
    assert np.array_equal(decoded, convert.image_to_depth(convert.numpy_to_image(mm, "16UC1")), equal_nan=True)
    assert np.array_equal(np.nan_to_num(decoded * 1000.0).round().astype(np.uint16), mm)


def test_compressed_depth_32fc1_is_quantised_inverse_depth():
    """depth = A / (v - B) for the 16-bit PNG value v (0: none), A, B the header's parameters."""
    import io
    import struct

    from PIL import Image as PILImage

    a, b = 10.0 * 11.0, 1.0 - 110.0 / 10.0  # compressed_depth_image_transport: q = 10, depth_max = 10 m
    depth = np.array([[0.5, 1.0], [2.0, 0.0]], dtype=np.float32)
    v = np.where(depth > 0, np.round(a / np.where(depth > 0, depth, 1) + b), 0).astype(np.uint16)
    png = io.BytesIO()
    PILImage.fromarray(v).save(png, format="PNG")
    msg = CompressedImage(format="32FC1; compressedDepth png", data=struct.pack("<iff", 0, a, b) + png.getvalue())
    decoded = convert.compressed_depth_to_depth(msg)
    assert np.allclose(decoded[depth > 0], depth[depth > 0], rtol=1e-3) and np.isnan(decoded[1, 1])


def test_malformed_compressed_depth_is_refused_with_the_reason():
    good = bytes(convert.depth_mm_to_compressed(np.full((4, 4), 800, np.uint16)).data)
    cases = {
        "ENCODING; compressedDepth png": CompressedImage(format="16UC1; compressedDepth rvl", data=good),
        "shorter than its 12-byte header": CompressedImage(format="16UC1; compressedDepth png", data=good[:10]),
        "malformed compressedDepth header: format 7": CompressedImage(
            format="16UC1; compressedDepth png", data=b"\x07" + good[1:]
        ),
        "no PNG after the 12-byte header": CompressedImage(
            format="16UC1; compressedDepth png", data=good[:12] + good[20:]
        ),
        "encoding 'mono8'": CompressedImage(format="mono8; compressedDepth png", data=good),
    }
    for reason, msg in cases.items():
        with pytest.raises(convert.ConversionError, match=re.escape(reason)):
            convert.compressed_depth_to_depth(msg)
