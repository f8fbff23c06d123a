"""Feeds the core's TransformBuffer from ``/tf`` and ``/tf_static`` (tf2_msgs/TFMessage).

The ROS wheels have no tf2_ros; this listener needs only tf2_msgs (a full ROS install's, or the
wire-compatible stand-in scripts/setup.sh builds from interfaces/tf2_msgs). QoS as tf2_ros's
listener: /tf reliable, volatile, depth 100; /tf_static reliable, transient local, depth 100, so a
late listener still receives every static transform once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from langscene_core.geometry.transforms import TransformBuffer, TransformError
from langscene_ros import convert

TF = "/tf"
TF_STATIC = "/tf_static"
TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class TfListener:
    """Subscribes ``node`` to /tf and /tf_static and stores every transform in ``buffer``.

    on_update: called after each TFMessage was stored (e.g. to retry images waiting for their pose);
    it runs on the subscription's callback group. :meth:`rejected` counts refused transforms by the
    buffer's reason (invalid: NaN or non-unit quaternion, loop, old_data: older than the cache);
    each refusal is logged, throttled, and given to ``reject`` (e.g. the engine's
    :meth:`~langscene_core.engine.LangScene.reject`, so that the node's status counts it) as
    :func:`refusal_reason` says it.
    """

    def __init__(
        self,
        node: Node,
        buffer: TransformBuffer,
        on_update: Callable[[], None] | None = None,
        callback_group: CallbackGroup | None = None,
        reject: Callable[[str], object] | None = None,
        internal_error: Callable[[str], str] | None = None,
    ) -> None:
        self.buffer = buffer
        self._rejected: Counter[str] = Counter()
        self._node = node
        self._on_update = on_update
        self._reject = reject
        self._internal_error = internal_error
        self._lock = threading.Lock()
        node.create_subscription(
            TFMessage, TF, lambda msg: self._receive(msg, static=False), TF_QOS, callback_group=callback_group
        )
        node.create_subscription(
            TFMessage,
            TF_STATIC,
            lambda msg: self._receive(msg, static=True),
            TF_STATIC_QOS,
            callback_group=callback_group,
        )

    def rejected(self) -> dict[str, int]:
        """A copy of the refused-transform counts by reason (safe to call from any thread)."""
        with self._lock:
            return dict(self._rejected)

    def _receive(self, msg: TFMessage, static: bool) -> None:
        """The subscriptions' callback: :meth:`_store` inside a boundary. An exception other than a
        refused transform is a bug (in the buffer or in ``on_update``): given to ``internal_error``
        (logged with its traceback and counted) and to ``reject``, never raised into the executor,
        which would end the node's spin. Without ``internal_error`` it is raised."""
        try:
            self._store(msg, static)
        except Exception:  # noqa: BLE001
            if self._internal_error is None:
                raise
            topic = TF_STATIC if static else TF
            self._internal_error(f"{topic} message")
            if self._reject is not None:
                self._reject(f"{topic}: internal error")

    def _store(self, msg: TFMessage, static: bool) -> None:
        refused = store_transforms(self.buffer, msg, static)
        if refused:
            with self._lock:
                self._rejected.update(refused)
            if self._reject is not None:
                for reason, count in refused.items():
                    for _ in range(count):
                        self._reject(refusal_reason(TF_STATIC if static else TF, reason))
            self._node.get_logger().warning(
                f"rejected transforms: {', '.join(f'{n} {reason}' for reason, n in refused.items())}",
                throttle_duration_sec=5.0,
            )
        if self._on_update is not None:
            self._on_update()


# what each refusal reason of the transform buffer means, for the status line
REFUSALS = {
    "invalid": "NaN, infinite or a non-unit quaternion",
    "loop": "it would close a loop in the tree",
    "old_data": "older than node.tf_cache_s",
}


def refusal_reason(topic: str, reason: str) -> str:
    """The rejected-input reason of a transform from ``topic`` refused for ``reason`` (the buffer's
    TransformError.reason), e.g. '/tf: transform refused (invalid: NaN, infinite or a non-unit quaternion)'."""
    meaning = REFUSALS.get(reason)
    return f"{topic}: transform refused ({reason}{': ' + meaning if meaning else ''})"


def store_transforms(buffer: TransformBuffer, msg, static: bool) -> Counter[str]:
    """Store every transform of a tf2_msgs/TFMessage (from /tf, or /tf_static when ``static``) in
    ``buffer``; returns the refused ones counted by the buffer's reason (invalid, loop, old_data)."""
    refused: Counter[str] = Counter()
    for transform in msg.transforms:
        translation, quaternion = convert.transform_to_parts(transform.transform)
        try:
            buffer.set_transform(
                transform.header.frame_id,
                transform.child_frame_id,
                convert.stamp_to_seconds(transform.header.stamp),
                translation=translation,
                quaternion=quaternion,
                static=static,
            )
        except TransformError as exc:
            refused[exc.reason] += 1
    return refused
