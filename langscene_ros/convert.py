"""Conversions between ROS messages and numpy: Image, CameraInfo, PointCloud2, Pose, Transform, Time.

Written here rather than taken from cv_bridge / sensor_msgs_py: PyPI's cv-bridge is a ROS 1-era copy
that breaks with NumPy 2 and silently converts 16UC1 to uint8, and sensor_msgs_py is not installable
from the wheels (see ../shared/FACTS.md). Every conversion honours ``step`` (row padding) and
``is_bigendian``.
"""

from __future__ import annotations

import io
import sys

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, TransformStamped, Vector3
from PIL import Image as PILImage
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from langscene_core.errors import LangsceneError
from langscene_core.geometry.camera import Intrinsics
from langscene_core.geometry.transforms import split_transform


class ConversionError(LangsceneError, ValueError):
    """A message that cannot be converted; the message says why."""


# encoding -> (numpy scalar type, channels)
IMAGE_ENCODINGS: dict[str, tuple[type, int]] = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "mono8": (np.uint8, 1),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),  # the ZED and Azure Kinect drivers' colour images
    "16UC1": (np.uint16, 1),
    "mono16": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}

_HOST_BIG_ENDIAN = sys.byteorder == "big"


def image_to_numpy(msg: Image) -> np.ndarray:
    """Image -> [H, W] (one channel) or [H, W, C] array in the message's own encoding and dtype.

    bgr8 / bgra8 are returned as stored (BGR, BGRA); use :func:`image_to_rgb` for RGB. Raises ConversionError on an
    unknown encoding or when ``step``/``data`` do not match the size.
    """
    if msg.encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{msg.encoding}' (supported: {', '.join(IMAGE_ENCODINGS)})")
    scalar, channels = IMAGE_ENCODINGS[msg.encoding]
    dtype = np.dtype(scalar).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.width == 0 or msg.height == 0:
        raise ConversionError("image has zero width or height")
    if msg.step < row_bytes:
        raise ConversionError(f"image step {msg.step} is smaller than a row ({row_bytes} bytes)")
    if len(msg.data) < msg.step * msg.height:
        raise ConversionError(f"image data has {len(msg.data)} bytes, expected step*height = {msg.step * msg.height}")
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8, count=msg.step * msg.height)
    rows = raw.reshape(msg.height, msg.step)[:, :row_bytes]
    array = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    array = array.astype(dtype.newbyteorder("="), copy=False)
    return array[..., 0] if channels == 1 else array


COLOUR_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8")


def image_to_rgb(msg: Image) -> np.ndarray:
    """Colour image -> [H, W, 3] uint8 RGB (one of :data:`COLOUR_ENCODINGS`; alpha is dropped)."""
    if msg.encoding not in COLOUR_ENCODINGS:
        raise ConversionError(f"expected a colour image ({', '.join(COLOUR_ENCODINGS)}), got '{msg.encoding}'")
    array = image_to_numpy(msg)
    if msg.encoding == "mono8":
        return np.repeat(array[..., None], 3, axis=-1)
    if msg.encoding.startswith("bgr"):
        return np.ascontiguousarray(array[..., 2::-1])
    return np.ascontiguousarray(array[..., :3])


# CompressedImage formats image_transport's compressed plugin writes for colour ("jpeg" / "png",
# optionally after the image's encoding: "rgb8; jpeg compressed bgr8")
COMPRESSED_FORMATS = ("jpeg", "png")


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """CompressedImage (jpeg or png colour, as image_transport's compressed plugin sends it) -> [H, W, 3]
    uint8 RGB. Raises ConversionError for another format or bytes that do not decode."""
    kind = msg.format.split(";")[-1].split()[0].lower() if msg.format.strip() else ""
    if kind not in COMPRESSED_FORMATS:
        raise ConversionError(f"unsupported compressed image format {msg.format!r} (supported: jpeg, png)")
    try:
        with PILImage.open(io.BytesIO(bytes(msg.data))) as image:
            found = (image.format or "").lower()
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's words for bytes that are no image
        raise ConversionError(f"compressed image ({msg.format}) does not decode: {exc}") from exc
    if found != kind:
        raise ConversionError(f"compressed image says {kind} but holds {found or 'an unknown format'}")
    return rgb


def rgb_to_compressed(rgb: np.ndarray, kind: str, header=None, jpeg_quality: int = 95) -> CompressedImage:
    """[H, W, 3] uint8 RGB -> CompressedImage of ``kind`` 'jpeg' or 'png' (format "rgb8; KIND compressed
    rgb8", as image_transport's compressed plugin names it)."""
    if kind not in COMPRESSED_FORMATS:
        raise ConversionError(f"compressed format must be jpeg or png, got {kind!r}")
    buffer = io.BytesIO()
    options = {"quality": jpeg_quality} if kind == "jpeg" else {}
    PILImage.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, format=kind.upper(), **options)
    msg = CompressedImage(format=f"rgb8; {kind} compressed rgb8", data=buffer.getvalue())
    if header is not None:
        msg.header = header
    return msg


# Median measured depth, metres, beyond which a depth image is taken to be in the wrong unit: no RGB-D
# camera a robot carries measures a scene whose median is under 2 cm or over 50 m, while a 16UC1 image
# written in metres (values 0..10) or a 32FC1 image written in millimetres (values 300..5000) lands
# there at once. Refusing such frames beats building a scene a thousand times too small or too large.
PLAUSIBLE_MEDIAN_DEPTH_M = (0.02, 50.0)


def image_to_depth(msg: Image) -> np.ndarray:
    """Depth image -> [H, W] float32 metres; 16UC1/mono16 are millimetres, 0 = no measurement (NaN).

    Raises ConversionError for another encoding, an image without a single measurement, or one whose
    median measured depth lies outside :data:`PLAUSIBLE_MEDIAN_DEPTH_M` (the wrong unit)."""
    if msg.encoding in ("16UC1", "mono16", "32FC1"):
        return _checked_depth(image_to_numpy(msg), msg.encoding)
    raise ConversionError(f"expected a depth image (16UC1 mm or 32FC1 m), got '{msg.encoding}'")


def _checked_depth(raw: np.ndarray, encoding: str) -> np.ndarray:
    """[H, W] uint16 millimetres (0 = none) or float metres (0 / NaN = none) -> float32 metres, NaN =
    none; ConversionError without a measurement or with an implausible median (the wrong unit)."""
    if encoding in ("16UC1", "mono16"):
        mm = raw.astype(np.float32)
        depth, unit = np.where(mm > 0, mm / 1000.0, np.nan).astype(np.float32), "millimetres"
    else:
        metres = raw.astype(np.float32)
        depth, unit = np.where(np.isfinite(metres) & (metres > 0), metres, np.nan).astype(np.float32), "metres"
    measured = depth[np.isfinite(depth)]
    if measured.size == 0:
        raise ConversionError("depth image has no measurement (all zero or invalid)")
    median = float(np.median(measured))
    low, high = PLAUSIBLE_MEDIAN_DEPTH_M
    if not low <= median <= high:
        raise ConversionError(
            f"depth median {median:.4g} m read as {unit} ({encoding}) is outside [{low}, {high}] m: wrong unit?"
        )
    return depth


# compressed_depth_image_transport's CompressedImage: format "ENCODING; compressedDepth png" and data =
# a 12-byte ConfigHeader (int32 compressionFormat: -1 UNDEFINED, 0 INV_DEPTH; float32 depthParam[2]),
# little endian as written on x86/ARM, then a PNG. 16UC1: the PNG is the 16-bit millimetre image
# (depthParam unused). 32FC1: the PNG is 16-bit quantised inverse depth v = A / depth + B (A, B =
# depthParam), so depth = A / (v - B), v = 0 no measurement.
COMPRESSED_DEPTH_HEADER = np.dtype([("format", "<i4"), ("depth_param", "<f4", (2,))])
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def compressed_depth_to_depth(msg: CompressedImage) -> np.ndarray:
    """compressedDepth CompressedImage (16UC1 or 32FC1, png) -> [H, W] float32 metres, NaN = none.

    Raises ConversionError naming what is wrong: another format (e.g. rvl), a header that is short or
    malformed, a body that is no 16-bit PNG, or depth that fails :func:`image_to_depth`'s checks."""
    parts = [part.strip() for part in msg.format.split(";")]
    encoding = parts[0]
    if len(parts) != 2 or parts[1] not in ("compressedDepth png", "compressedDepth"):
        raise ConversionError(
            f"unsupported compressedDepth format {msg.format!r} (supported: ENCODING; compressedDepth png)"
        )
    if encoding not in ("16UC1", "32FC1"):
        raise ConversionError(f"compressedDepth of encoding {encoding!r} (supported: 16UC1, 32FC1)")
    data = bytes(msg.data)
    size = COMPRESSED_DEPTH_HEADER.itemsize
    if len(data) < size + len(PNG_SIGNATURE):
        raise ConversionError(
            f"malformed compressedDepth: {len(data)} bytes, shorter than its {size}-byte header and a PNG"
        )
    header = np.frombuffer(data[:size], dtype=COMPRESSED_DEPTH_HEADER)[0]
    if int(header["format"]) not in (-1, 0) or not np.all(np.isfinite(header["depth_param"])):
        raise ConversionError(
            f"malformed compressedDepth header: format {int(header['format'])}, depth parameters "
            f"{header['depth_param'].tolist()} (expected format -1 or 0 and finite parameters)"
        )
    if data[size : size + len(PNG_SIGNATURE)] != PNG_SIGNATURE:
        raise ConversionError(f"malformed compressedDepth: no PNG after the {size}-byte header")
    try:
        with PILImage.open(io.BytesIO(data[size:])) as image:
            raw = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ConversionError(f"compressedDepth PNG does not decode: {exc}") from exc
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise ConversionError(f"compressedDepth PNG is {raw.dtype} of shape {raw.shape}, expected one 16-bit channel")
    if encoding == "16UC1":
        return _checked_depth(raw, encoding)
    a, b = (float(x) for x in header["depth_param"])
    values = raw.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        metres = np.where(raw > 0, a / (values - b), np.nan).astype(np.float32)
    return _checked_depth(metres, encoding)


def depth_mm_to_compressed(depth_mm: np.ndarray, header=None) -> CompressedImage:
    """[H, W] uint16 millimetres (0 = none) -> compressedDepth CompressedImage ("16UC1; compressedDepth
    png": the ConfigHeader with format INV_DEPTH (0, as compressed_depth_image_transport writes it for
    16UC1 too) and zero parameters, then a 16-bit PNG)."""
    depth_mm = np.asarray(depth_mm)
    if depth_mm.ndim != 2 or depth_mm.dtype != np.uint16:
        raise ConversionError(f"expected [H, W] uint16 millimetres, got {depth_mm.dtype} of shape {depth_mm.shape}")
    config = np.zeros((), dtype=COMPRESSED_DEPTH_HEADER)
    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(depth_mm)).save(buffer, format="PNG")
    msg = CompressedImage(format="16UC1; compressedDepth png", data=config.tobytes() + buffer.getvalue())
    if header is not None:
        msg.header = header
    return msg


def numpy_to_image(array: np.ndarray, encoding: str, header=None) -> Image:
    """[H, W] or [H, W, C] array -> Image with a tight step, host byte order."""
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{encoding}'")
    scalar, channels = IMAGE_ENCODINGS[encoding]
    array = np.asarray(array)
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        raise ConversionError(f"array of shape {array.shape} does not fit encoding '{encoding}'")
    array = np.ascontiguousarray(array, dtype=scalar)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_BIG_ENDIAN)
    msg.step = msg.width * channels * array.dtype.itemsize
    msg.data = array.tobytes()
    return msg


def depth_to_image(depth_m: np.ndarray, header=None) -> Image:
    """[H, W] float metres (NaN = none) -> 32FC1 Image."""
    return numpy_to_image(np.nan_to_num(depth_m, nan=0.0).astype(np.float32), "32FC1", header)


def camera_info_to_intrinsics(msg: CameraInfo) -> Intrinsics:
    """CameraInfo -> Intrinsics of the rectified image the node takes ``image`` and ``depth`` to be.

    From P, the projection matrix of the rectified image, as image_geometry's PinholeCameraModel and
    depth_image_proc read a rectified image (a calibrated camera's P differs from its raw K by a few
    percent). A camera_info without P (all zero, as some uncalibrated drivers publish) is read from K
    when D is zero as well (raw and rectified are then the same camera); with distortion and no P it is
    refused, since then nothing says which camera the rectified image is. ConversionError also for a
    missing size or a K or P without a finite positive focal length."""
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if msg.width == 0 or msg.height == 0:
        raise ConversionError(f"camera_info has no size ({msg.width}x{msg.height})")
    if not np.all(np.isfinite(k)):
        raise ConversionError("camera_info K holds a NaN or infinite value")
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ConversionError(f"camera_info has no focal length (fx {k[0, 0]}, fy {k[1, 1]})")
    p = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
    if not np.any(p):
        if np.any(np.asarray(msg.d, dtype=np.float64)):
            raise ConversionError(
                f"camera_info has distortion ({msg.distortion_model} D) but no projection matrix P: the "
                "rectified image's camera is unknown (publish P, as camera_calibration writes it)"
            )
        return Intrinsics.from_K(k, msg.width, msg.height)
    if not np.all(np.isfinite(p)) or p[0, 0] <= 0 or p[1, 1] <= 0:
        raise ConversionError(f"camera_info P has no finite focal length (fx {p[0, 0]}, fy {p[1, 1]})")
    return Intrinsics.from_K(p[:, :3], msg.width, msg.height)


def intrinsics_to_camera_info(intrinsics: Intrinsics, header=None) -> CameraInfo:
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = intrinsics.width, intrinsics.height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = intrinsics.K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    p = np.zeros((3, 4))
    p[:, :3] = intrinsics.K
    msg.p = p.reshape(-1).tolist()
    return msg


def matrix_to_pose(matrix: np.ndarray) -> Pose:
    """Rigid [4, 4] transform -> Pose (position + unit quaternion x, y, z, w)."""
    return matrices_to_poses(np.asarray(matrix)[None])[0]


def matrices_to_poses(matrices) -> list[Pose]:
    """Rigid transforms [K, 4, 4] (an array or a sequence of [4, 4]) -> K Poses, with one rotation conversion for all (a query answers
    with a box and up to ``max_grasps`` grasps: scipy's per-call overhead would dominate)."""
    matrices = np.asarray(matrices, dtype=np.float64).reshape(-1, 4, 4)
    if len(matrices) == 0:
        return []
    quaternions = Rotation.from_matrix(matrices[:, :3, :3]).as_quat()  # [K, 4] x, y, z, w
    return [
        Pose(
            position=Point(x=float(t[0]), y=float(t[1]), z=float(t[2])),
            orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
        )
        for t, q in zip(matrices[:, :3, 3], quaternions)
    ]


# How far a pose's quaternion norm may be from 1 and still be normalised rather than refused (tf2
# warns at 0.01 too: float32 round trips stay far inside, a hand-typed or corrupt rotation does not).
QUATERNION_NORM_TOLERANCE = 0.01


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """Pose -> [4, 4] float64. Raises ConversionError for a non-finite position or quaternion, or a
    quaternion whose norm is off 1 by more than :data:`QUATERNION_NORM_TOLERANCE`."""
    q = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w])
    t = np.array([pose.position.x, pose.position.y, pose.position.z])
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
        raise ConversionError("pose has a NaN or infinite quaternion or position")
    with np.errstate(over="ignore"):  # a norm beyond float range is inf: refused below
        norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise ConversionError(f"pose quaternion has norm {norm:.4g}, not 1")
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat(q / norm).as_matrix()
    matrix[:3, 3] = t
    return matrix


def stamp_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time -> seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    """Seconds (float, >= 0) -> builtin_interfaces/Time, nanoseconds rounded."""
    total = int(round(seconds * 1e9))
    return Time(sec=total // 1_000_000_000, nanosec=total % 1_000_000_000)


def transform_to_parts(transform: Transform) -> tuple[np.ndarray, np.ndarray]:
    """Transform -> (translation [3] metres, quaternion [4] x, y, z, w) as given, unchecked: the
    transform buffer validates them (NaN, non-unit quaternion) and counts refusals by reason."""
    t, q = transform.translation, transform.rotation
    return np.array([t.x, t.y, t.z]), np.array([q.x, q.y, q.z, q.w])


def matrix_to_transform_stamped(matrix: np.ndarray, parent: str, child: str, stamp: Time) -> TransformStamped:
    """Rigid [4, 4] ``parent_from_child`` -> TransformStamped (header.frame_id = parent)."""
    t, q = split_transform(matrix)
    msg = TransformStamped()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, parent, child
    msg.transform = Transform(
        translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
        rotation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )
    return msg


# PointField datatype <-> numpy scalar type
_FIELD_TYPES = {
    PointField.INT8: np.int8,
    PointField.UINT8: np.uint8,
    PointField.INT16: np.int16,
    PointField.UINT16: np.uint16,
    PointField.INT32: np.int32,
    PointField.UINT32: np.uint32,
    PointField.FLOAT32: np.float32,
    PointField.FLOAT64: np.float64,
}
_NUMPY_TO_FIELD = {np.dtype(v): k for k, v in _FIELD_TYPES.items()}


def numpy_to_pointcloud2(points: np.ndarray, header=None) -> PointCloud2:
    """Structured array [N] (e.g. fields x, y, z, relevancy float32 and rgb) -> unorganised PointCloud2."""
    if points.dtype.names is None:
        raise ConversionError("point cloud array must be a structured array with named fields")
    points = np.ascontiguousarray(points)
    fields = []
    for name in points.dtype.names:
        dtype, offset = points.dtype.fields[name][:2]
        if dtype.shape or dtype.base.newbyteorder("=") not in _NUMPY_TO_FIELD:
            raise ConversionError(f"point field '{name}' has unsupported dtype {dtype}")
        fields.append(
            PointField(name=name, offset=offset, datatype=_NUMPY_TO_FIELD[dtype.base.newbyteorder("=")], count=1)
        )
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = 1, int(points.shape[0])
    msg.fields = fields
    msg.is_bigendian = _HOST_BIG_ENDIAN
    msg.point_step = points.dtype.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = True
    msg.data = points.tobytes()
    return msg


def pointcloud2_to_numpy(msg: PointCloud2) -> np.ndarray:
    """PointCloud2 -> structured array [height * width] with the message's fields (host byte order)."""
    for f in msg.fields:
        if f.datatype not in _FIELD_TYPES:
            raise ConversionError(f"point field '{f.name}' has unknown datatype {f.datatype}")

    def layout(order: str) -> list:
        formats = [
            (np.dtype(_FIELD_TYPES[f.datatype]).newbyteorder(order), (f.count,))
            if f.count > 1
            else np.dtype(_FIELD_TYPES[f.datatype]).newbyteorder(order)
            for f in msg.fields
        ]
        return formats

    names = [f.name for f in msg.fields]
    wire = np.dtype(
        {
            "names": names,
            "formats": layout(">" if msg.is_bigendian else "<"),
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    if msg.row_step < msg.point_step * msg.width or len(msg.data) < msg.row_step * msg.height:
        raise ConversionError("point cloud data is shorter than row_step * height")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8, count=msg.row_step * msg.height).reshape(
        msg.height, msg.row_step
    )
    packed = np.ascontiguousarray(rows[:, : msg.point_step * msg.width]).reshape(-1).view(wire)
    out = np.empty(packed.shape[0], dtype=np.dtype({"names": names, "formats": layout("=")}))
    for name in names:
        out[name] = packed[name]
    return out
