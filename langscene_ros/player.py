"""Publish a world dataset on the node's camera input topics, like a bag player.

The camera's pose goes out both ways the node takes it (``node.pose_source``): as a transform tree
``scene_frame -> camera_link -> camera_optical`` (``/tf_static`` once: the optical frame in the camera
body, :data:`LINK_FROM_OPTICAL`; ``/tf`` per frame: the body in the scene frame) and as ``camera_pose``.
Per frame, all with the same stamp (the player's clock at publish time): ``/tf``, ``camera_info``,
``camera_pose`` (geometry_msgs/PoseStamped, pose of the camera optical frame in ``scene_frame``),
``depth`` (32FC1 metres, 0 = no surface) and ``image`` (rgb8), the camera's in frame
``camera_optical``. Camera topic names are relative, so ``--ros-args -r __ns:=/robot`` or remaps
apply; /tf and /tf_static are absolute, as tf2_ros publishes them. Camera publishers are reliable (they
also match the node's best-effort sensor-data subscriptions); /tf and /tf_static have tf2_ros's QoS.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from langscene_core.sim import RenderedFrame
from langscene_ros import convert
from langscene_ros import interface as api
from langscene_ros.inputs import TRANSPORT_SUFFIX
from langscene_ros.tf_listener import TF, TF_QOS, TF_STATIC, TF_STATIC_QOS

CAMERA_FRAME = "camera_optical"  # frame_id of image, depth and camera_info
CAMERA_LINK = "camera_link"  # the camera body in a world bag's TF tree: scene -> camera_link -> optical
# camera_optical in camera_link (REP 103 body axes x forward, y left, z up -> optical x right, y down,
# z forward): the columns are the optical axes in body coordinates
LINK_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
BAG_START_S = 1_767_225_600  # a world bag's first stamp: 2026-01-01T00:00:00Z


def camera_mount_message(stamp: Time) -> TFMessage:
    """The /tf_static message of a world capture: camera_optical in camera_link (:data:`LINK_FROM_OPTICAL`)."""
    return TFMessage(
        transforms=[convert.matrix_to_transform_stamped(LINK_FROM_OPTICAL, CAMERA_LINK, CAMERA_FRAME, stamp)]
    )


def frame_messages(frame: RenderedFrame, stamp: Time, scene_frame: str) -> list[tuple[str, object]]:
    """(topic, message) pairs of one frame in publishing order: /tf (camera_link in ``scene_frame``,
    so that with :func:`camera_mount_message` the optical frame's pose is ``frame.cam_to_world``; an
    absolute name), then camera_info, camera_pose, depth and image last (the node's relative names)."""
    camera = Header(stamp=stamp, frame_id=CAMERA_FRAME)
    link = frame.cam_to_world @ np.linalg.inv(LINK_FROM_OPTICAL)
    return [
        (TF, TFMessage(transforms=[convert.matrix_to_transform_stamped(link, scene_frame, CAMERA_LINK, stamp)])),
        (api.CAMERA_INFO, convert.intrinsics_to_camera_info(frame.intrinsics, camera)),
        (
            api.CAMERA_POSE,
            PoseStamped(
                header=Header(stamp=stamp, frame_id=scene_frame), pose=convert.matrix_to_pose(frame.cam_to_world)
            ),
        ),
        (api.DEPTH, convert.depth_to_image(frame.depth, camera)),
        (api.IMAGE, convert.numpy_to_image(frame.rgb, "rgb8", camera)),
    ]


def world_bag_records(
    frames: Iterable[RenderedFrame],
    rate_hz: float,
    scene_frame: str = "map",
    image_format: str = "raw",
    depth_format: str = "raw",
) -> Iterator[tuple[str, int, object]]:
    """(topic, log time ns, message) of a world capture as a bag holds it: /tf_static once
    (camera_link -> camera_optical), then per frame, stamped BAG_START_S + i / rate_hz (log time = the
    stamp): /tf (scene_frame -> camera_link), camera_info, camera_pose, depth and image under the
    node's names made absolute (/image ...). image_format: raw (Image rgb8 on /image), jpeg or png
    (CompressedImage on /image/compressed); depth_format: raw (32FC1 metres on /depth) or
    compressedDepth (16UC1 millimetres, PNG, on /depth/compressedDepth)."""
    if image_format not in ("raw", *convert.COMPRESSED_FORMATS):
        raise ValueError(f"image format must be raw, jpeg or png, got {image_format!r}")
    if depth_format not in ("raw", "compressedDepth"):
        raise ValueError(f"depth format must be raw or compressedDepth, got {depth_format!r}")
    yield TF_STATIC, BAG_START_S * 10**9, camera_mount_message(Time(sec=BAG_START_S, nanosec=0))
    for i, frame in enumerate(frames):
        nanoseconds = BAG_START_S * 10**9 + int(round(i * 1e9 / rate_hz))
        stamp = Time(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)
        camera = Header(stamp=stamp, frame_id=CAMERA_FRAME)
        for topic, message in frame_messages(frame, stamp, scene_frame):
            if topic == TF:
                yield topic, nanoseconds, message
                continue
            if topic == api.DEPTH and depth_format != "raw":
                depth_mm = np.round(np.nan_to_num(frame.depth) * 1000.0).clip(0, 65535).astype(np.uint16)
                topic, message = (
                    api.DEPTH + TRANSPORT_SUFFIX[depth_format],
                    convert.depth_mm_to_compressed(depth_mm, camera),
                )
            elif topic == api.IMAGE and image_format != "raw":
                topic = api.IMAGE + TRANSPORT_SUFFIX["compressed"]
                message = convert.rgb_to_compressed(frame.rgb, image_format, camera)
            yield f"/{topic}", nanoseconds, message


class Player:
    """Publishers of a world capture's topics on ``node`` (module docstring); :meth:`play` sends frames
    at a fixed rate. The camera mount goes out on /tf_static (latched) when the player is made."""

    TYPES = {
        TF: TFMessage,
        api.CAMERA_INFO: CameraInfo,
        api.CAMERA_POSE: PoseStamped,
        api.DEPTH: Image,
        api.IMAGE: Image,
    }
    # what the node subscribes to whatever its node.pose_source (camera_pose only with 'topic')
    AWAITED = (TF, api.CAMERA_INFO, api.DEPTH, api.IMAGE)

    def __init__(self, node: Node, scene_frame: str = "map") -> None:
        self.node = node
        self.scene_frame = scene_frame
        self.publishers = {
            topic: node.create_publisher(kind, topic, TF_QOS if topic == TF else api.RELIABLE)
            for topic, kind in self.TYPES.items()
        }
        self.publishers[TF_STATIC] = node.create_publisher(TFMessage, TF_STATIC, TF_STATIC_QOS)
        self.publishers[TF_STATIC].publish(camera_mount_message(node.get_clock().now().to_msg()))

    def wait_for_subscribers(self, timeout_s: float, settle_s: float = 2.0) -> bool:
        """True once every topic of :attr:`AWAITED` has a subscriber (a node with ``node.pose_source:
        topic`` subscribes to camera_pose together with them), then ``settle_s`` more seconds: the
        publisher sees a subscription before the subscriber has matched the publisher, and a
        best-effort subscriber loses what arrives in between; discovery between two processes took up
        to 1.7 s here (1 s lost a first frame now and then in the test suite under load). False after
        ``timeout_s`` without."""
        deadline = time.monotonic() + timeout_s
        while any(self.publishers[topic].get_subscription_count() == 0 for topic in self.AWAITED):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        time.sleep(settle_s)
        return True

    def play(self, frames: Iterator[RenderedFrame], rate_hz: float, ack_timeout_s: float = 5.0) -> int:
        """Publish each frame, one every 1 / rate_hz seconds (steady schedule); returns how many.

        Then waits up to ``ack_timeout_s`` until reliable subscribers have acknowledged everything: a
        process that exits right after publishing loses what is still in flight (a frame in 3 of 7
        runs of the world-play test). Best-effort subscribers (the node's default
        ``node.qos.camera.reliability``) acknowledge nothing, so for them nothing waits and nothing is guaranteed."""
        period = 1.0 / rate_hz
        next_time = time.monotonic()
        count = 0
        for frame in frames:
            delay = next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamp = self.node.get_clock().now().to_msg()
            for topic, message in frame_messages(frame, stamp, self.scene_frame):
                self.publishers[topic].publish(message)
            count += 1
            next_time += period
        for publisher in self.publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=ack_timeout_s))
        return count


class BagPlayer:
    """Publishes a bag's topics as recorded (:mod:`langscene_ros.bag`), like ``ros2 bag play``.

    Every topic whose type is installed here gets a publisher under its recorded name (remaps in the
    node's ``--ros-args`` apply): /tf_static reliable + transient local and /tf reliable as tf2_ros
    publishes them, the others reliable (which also reaches best-effort subscriptions). Messages go
    out as their recorded bytes, so stamps and contents are the original ones. ``clock``: also
    publish /clock (rosgraph_msgs/Clock) with each message's log time, for nodes on use_sim_time.
    """

    def __init__(self, node: Node, bag, clock: bool = False) -> None:
        from langscene_ros.bag import BagError, message_type

        self.node = node
        self.bag = bag
        self.skipped: dict[str, str] = {}  # topic -> type not installed here
        self.publishers = {}
        for topic, info in bag.topics.items():
            try:
                kind = message_type(info.type)
            except BagError:
                self.skipped[topic] = info.type
                continue
            qos = TF_STATIC_QOS if topic == TF_STATIC else TF_QOS if topic == TF else api.RELIABLE
            self.publishers[topic] = node.create_publisher(kind, topic, qos)
        self._clock = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self._clock = node.create_publisher(Clock, "/clock", api.RELIABLE)

    def wait_for_subscribers(self, timeout_s: float, settle_s: float = 2.0) -> bool:
        """True once every played topic but /tf, /tf_static and geometry_msgs/PoseStamped ones (the node
        reads a camera_pose topic only with ``node.pose_source: topic``) has a subscriber, then
        ``settle_s`` more seconds (see :meth:`Player.wait_for_subscribers`); False after ``timeout_s``
        without."""
        deadline = time.monotonic() + timeout_s
        watched = [
            p
            for topic, p in self.publishers.items()
            if topic not in (TF, TF_STATIC) and self.bag.topics[topic].type != "geometry_msgs/msg/PoseStamped"
        ]
        while any(p.get_subscription_count() == 0 for p in watched):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        time.sleep(settle_s)
        return True

    def play(self, rate: float, ack_timeout_s: float = 5.0) -> dict[str, int]:
        """Publish every message at its log time relative to the first, sped up by ``rate`` (2: twice
        as fast); returns the messages published per topic. BagError on a corrupt part of the bag."""
        from rosgraph_msgs.msg import Clock

        counts = dict.fromkeys(self.publishers, 0)
        first_ns, start = None, time.monotonic()
        for topic, stamp_ns, data in self.bag.raw_messages(self.publishers):
            if first_ns is None:
                first_ns = stamp_ns
            delay = start + (stamp_ns - first_ns) * 1e-9 / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if self._clock is not None:
                self._clock.publish(Clock(clock=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)))
            self.publishers[topic].publish(data)
            counts[topic] += 1
        for publisher in self.publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=ack_timeout_s))
        return counts
