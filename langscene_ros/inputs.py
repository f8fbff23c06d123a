"""The node's camera inputs, message by message: converted (:mod:`langscene_ros.convert`) and handed to
the engine. One code path for every way messages arrive: the node's subscriptions
(:mod:`langscene_ros.node`) and a bag read offline (``langscene ingest``, :mod:`langscene_ros.bag`),
so both build the same keyframes from the same messages.

Messages are rclpy message objects (the node's subscription types, or bag bytes deserialized into
them with ``rclpy.serialization``); nothing here needs a running ROS context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from langscene_core.config import NodeConfig
from langscene_core.engine import LangScene
from langscene_ros import convert
from langscene_ros import interface as api
from langscene_ros.tf_listener import store_transforms

# the topic suffixes image_transport's plugins add to the resolved base topic
TRANSPORT_SUFFIX = {"raw": "", "compressed": "/compressed", "compressedDepth": "/compressedDepth"}


@dataclass(frozen=True)
class CameraInput:
    """One subscription of the node. label: the input's relative name (:mod:`langscene_ros.interface`),
    which remaps apply to; suffix: the transport's suffix added to the resolved name ('' for raw);
    type: the rclpy message class; handler: the :class:`Inputs` method taking it; required: the node
    reconstructs nothing without it."""

    label: str
    suffix: str
    type: type
    handler: str
    required: bool

    def topic(self, resolve: Callable[[str], str]) -> str:
        """The topic to subscribe to, given a name resolver (rclpy ``Node.resolve_topic_name``, or
        :meth:`langscene_ros.ros_args.RosArgs.resolve`); raw inputs keep their relative name."""
        return resolve(self.label) + self.suffix if self.suffix else self.label


def camera_inputs(config: NodeConfig) -> list[CameraInput]:
    """The camera subscriptions ``config`` asks for (``image_transport``, ``depth_transport``,
    ``pose_source``); /tf and /tf_static come on top (:mod:`langscene_ros.tf_listener`)."""
    colour_raw, depth_raw = config.image_transport == "raw", config.depth_transport == "raw"
    inputs = [
        CameraInput(
            api.IMAGE,
            TRANSPORT_SUFFIX[config.image_transport],
            Image if colour_raw else CompressedImage,
            "image" if colour_raw else "compressed_image",
            True,
        ),
        CameraInput(api.CAMERA_INFO, "", CameraInfo, "camera_info", True),
        CameraInput(
            api.DEPTH,
            TRANSPORT_SUFFIX[config.depth_transport],
            Image if depth_raw else CompressedImage,
            "depth" if depth_raw else "compressed_depth",
            False,
        ),
    ]
    if config.pose_source == "topic":
        inputs.append(CameraInput(api.CAMERA_POSE, "", PoseStamped, "pose", True))
    return inputs


class Inputs:
    """Handlers of the node's inputs (:data:`langscene_ros.interface` names) over ``engine``.

    reject(reason, detail, count): a message refused (conversion failed, wrong frame), after the engine
    counted it (:meth:`LangScene.reject`: ``count`` refusals so far); the callback logs it. seen(label): every message of input
    ``label`` as it arrives (the node's /diagnostics rates). internal_error(what): called inside an
    ``except`` for an exception outside the conversion errors (a bug); returns a one-line description.
    """

    def __init__(
        self,
        engine: LangScene,
        config: NodeConfig,
        reject: Callable[[str, str, int], None],
        internal_error: Callable[[str], str],
        seen: Callable[[str], None] = lambda label: None,
    ) -> None:
        self.engine = engine
        self.config = config
        self._reject = reject
        self._internal_error = internal_error
        self._seen = seen
        self.rejected_transforms: dict[str, int] = {}

    def _ingest(self, label: str, to_numpy, add) -> None:
        """Convert one message of input ``label`` (``to_numpy()``); reject it with a reason if that fails,
        else hand the value to the engine (``add(value)``)."""
        self._seen(label)
        try:
            value = to_numpy()
        except convert.ConversionError as exc:
            self._refuse(f"{label}: {exc}")
            return
        except Exception:  # noqa: BLE001 - a message that breaks the conversion is a bug, not the node's end
            self._refuse(f"{label}: internal error in the conversion", self._internal_error(f"{label} conversion"))
            return
        try:
            add(value)
        except Exception:  # noqa: BLE001
            self._refuse(f"{label}: internal error in the engine", self._internal_error(f"{label} input"))

    def _refuse(self, reason: str, detail: str = "") -> None:
        self._reject(reason, detail, self.engine.reject(reason))

    def camera_info(self, msg) -> None:
        """sensor_msgs/CameraInfo."""
        self._ingest(api.CAMERA_INFO, lambda: convert.camera_info_to_intrinsics(msg), self.engine.set_intrinsics)

    def pose(self, msg) -> None:
        """geometry_msgs/PoseStamped of the camera optical frame in ``node.scene_frame``."""
        frame = self.config.scene_frame
        if msg.header.frame_id and msg.header.frame_id != frame:
            self._seen(api.CAMERA_POSE)
            self._refuse(f"camera_pose in frame '{msg.header.frame_id}', expected '{frame}'")
            return
        stamp = convert.stamp_to_seconds(msg.header.stamp)
        self._ingest(
            api.CAMERA_POSE, lambda: convert.pose_to_matrix(msg.pose), lambda m: self.engine.add_pose(stamp, m)
        )

    def depth(self, msg) -> None:
        """sensor_msgs/Image 16UC1 (mm) or 32FC1 (m)."""
        stamp = convert.stamp_to_seconds(msg.header.stamp)
        self._ingest(api.DEPTH, lambda: convert.image_to_depth(msg), lambda d: self.engine.add_depth(stamp, d))

    def image(self, msg) -> None:
        """sensor_msgs/Image of a colour encoding (:data:`convert.COLOUR_ENCODINGS`)."""
        stamp = convert.stamp_to_seconds(msg.header.stamp)
        self._ingest(
            api.IMAGE,
            lambda: convert.image_to_rgb(msg),
            lambda rgb: self.engine.add_image(stamp, rgb, msg.header.frame_id),
        )

    def compressed_image(self, msg) -> None:
        """sensor_msgs/CompressedImage jpeg or png colour (``node.image_transport: compressed``)."""
        stamp = convert.stamp_to_seconds(msg.header.stamp)
        self._ingest(
            api.IMAGE,
            lambda: convert.compressed_to_rgb(msg),
            lambda rgb: self.engine.add_image(stamp, rgb, msg.header.frame_id),
        )

    def compressed_depth(self, msg) -> None:
        """sensor_msgs/CompressedImage in compressed_depth_image_transport's format
        (``node.depth_transport: compressedDepth``)."""
        stamp = convert.stamp_to_seconds(msg.header.stamp)
        self._ingest(
            api.DEPTH, lambda: convert.compressed_depth_to_depth(msg), lambda d: self.engine.add_depth(stamp, d)
        )

    def transforms(self, msg, static: bool) -> dict[str, int]:
        """tf2_msgs/TFMessage from /tf (static False) or /tf_static: stored in the engine's transform
        buffer; with ``node.pose_source: tf`` images waiting for their pose are tried again. Returns
        the refused transforms of this message by reason (also added to :attr:`rejected_transforms`)."""
        refused = store_transforms(self.engine.transforms, msg, static)
        for reason, count in refused.items():
            self.rejected_transforms[reason] = self.rejected_transforms.get(reason, 0) + count
        if self.config.pose_source == "tf":
            self.engine.transforms_updated()
        return refused
