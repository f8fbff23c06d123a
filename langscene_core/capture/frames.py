"""Camera frames and their assembly from separately arriving streams (image, camera_info, depth, pose).

A :class:`Frame` is one posed RGB(-D) view. :class:`FrameSynchronizer` pairs each image with its
camera pose at the image stamp, with the depth image nearest in stamp within a tolerance, and with
the latest camera intrinsics. The pose comes either from a pose stream (``add_pose``: interpolated
between the two poses around the image stamp) or from a lookup such as a TF buffer
(``pose_lookup``, see :func:`tf_pose_lookup`). Images that cannot be paired yet stay pending for a
bounded time and are retried on every input (and on ``retry()``), then dropped and counted by
reason, never queued without bound.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from langscene_core.config import NodeConfig
from langscene_core.geometry.camera import Intrinsics
from langscene_core.geometry.transforms import (
    ConnectivityError,
    ExtrapolationError,
    TransformBuffer,
    TransformError,
    UnknownFrameError,
)

# (image stamp in seconds, the image's frame id) -> cam_to_world [4, 4]; raises TransformError while
# (or when) the pose is not available.
PoseLookup = Callable[[float, str], np.ndarray]

# Frame names of the pose stream inside the synchronizer's own buffer (topic mode).
_SCENE, _CAMERA = "scene", "camera"


@dataclass(frozen=True)
class Frame:
    """One posed view.

    rgb: [H, W, 3] uint8. depth: [H, W] float32 metres along camera z (NaN = none) or None.
    cam_to_world: [4, 4] float64, camera optical frame (OpenCV) -> scene frame. stamp: seconds.
    """

    stamp: float
    rgb: np.ndarray
    intrinsics: Intrinsics
    cam_to_world: np.ndarray
    depth: np.ndarray | None = None


def tf_pose_lookup(buffer: TransformBuffer, scene_frame: str, camera_frame: str = "") -> PoseLookup:
    """A PoseLookup reading ``scene_frame <- camera frame`` from ``buffer`` at the image stamp.

    The camera frame is ``camera_frame`` when set, else the image's own frame id (``header.frame_id``).
    """

    def lookup(stamp: float, frame_id: str) -> np.ndarray:
        source = camera_frame or frame_id
        if not source:
            raise UnknownFrameError("the image has no frame_id and no camera frame is configured")
        return buffer.lookup(scene_frame, source, stamp)

    return lookup


@dataclass
class _Stamped:
    stamp: float
    value: object


@dataclass
class _PendingImage:
    stamp: float
    rgb: np.ndarray
    frame_id: str
    cam_to_world: np.ndarray | None = None  # found once, kept while the image waits for the rest


@dataclass
class FrameSynchronizer:
    """Pairs images with their pose at the image stamp, the nearest depth and the latest intrinsics.

    Pose: with ``pose_lookup`` None, the poses given to :meth:`add_pose` are interpolated (linear
    translation, slerp rotation) between the two around the image stamp when they are at most
    ``max_pose_gap_s`` apart, and an image stamped exactly at a pose takes that pose; else
    ``pose_lookup(stamp, frame_id)`` gives it (e.g. :func:`tf_pose_lookup`). An image whose pose may
    still come (no later pose yet, an unknown frame or a broken chain) waits; one that cannot get a
    pose any more (before the first pose, or between two poses too far apart) is dropped at once.

    tolerance_s: largest stamp difference of an image and its depth. Each stream arrives in stamp
    order, so an image is dropped as soon as the depth stream has moved past its stamp. Depth is
    optional (an RGB-only camera) until the first depth arrives; before that an image waits for a
    depth partner until the image stream runs ``depth_wait_s`` past its stamp, as it waits for its
    pose, so an image that overtakes its depth (separate subscriptions, separate threads) still gets
    it. When that wait runs out with no depth at all, the camera counts as RGB-only: the waiting
    images are taken without depth and later ones no longer wait (a depth arriving later makes
    images wait for theirs again). depth_wait_s 0: images before the first depth never wait.
    ``require_depth`` (the depth mask mapper needs every frame's depth): every image waits for its
    depth from the start and is dropped as ``no_depth`` without one; depth_wait_s no longer applies. max_wait_s:
    how far the newest stamp seen may run ahead of a pending image before it is dropped anyway (a
    stream that stopped). history: how many poses / depths / pending images are kept.

    Stamps: an image or depth stamped at or before the previous one of its stream is dropped
    (image_out_of_order, depth_out_of_order); an input of any stream (poses too) stamped more than
    ``max_wait_s`` before its stream's previous one means the clock jumped back (a bag played again, a simulation reset): everything pending is cleared, as tf2
    clears its buffer on such a jump, counted once as time_jump_back, and the input is taken.

    ``dropped`` counts dropped inputs by reason: images with no_camera_info, no_depth, overflow,
    no_pose (no pose at the stamp in time), pose_gap, pose_unknown_frame, pose_no_chain; pose
    samples refused by :meth:`add_pose` as pose_sample_<reason> (e.g. pose_sample_old_data); the
    stamp reasons above. Every image given to :meth:`add_image` is accounted for: ``images_in`` ==
    ``images_out`` (returned as frames) + ``images_dropped`` (also counted in ``dropped`` by reason,
    'cleared' for those pending at :meth:`clear`) + ``pending``.
    """

    tolerance_s: float = 0.02
    max_pose_gap_s: float = 0.2
    depth_wait_s: float = 0.0
    max_wait_s: float = 5.0
    history: int = 32
    pose_lookup: PoseLookup | None = None
    require_depth: bool = False
    dropped: Counter = field(default_factory=Counter)
    intrinsics: Intrinsics | None = None
    _poses: TransformBuffer = field(init=False)
    _depths: deque = field(default_factory=deque)
    _pending: deque = field(default_factory=deque)
    _stream_has_depth: bool = False
    _depth_given_up: bool = False  # depth_wait_s ran out before any depth: an RGB-only camera
    _newest_stamp: float = float("-inf")
    _last_stamp: dict = field(default_factory=dict)  # stream ('image', 'depth') -> its newest stamp
    images_in: int = 0
    images_out: int = 0
    images_dropped: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.depth_wait_s <= self.max_wait_s:
            raise ValueError(f"depth_wait_s must lie in [0, max_wait_s = {self.max_wait_s}], got {self.depth_wait_s}")
        # poses as old as the oldest image that may still wait for them
        self._poses = TransformBuffer(
            cache_s=self.max_wait_s + self.max_pose_gap_s, max_samples=self.history, max_gap_s=self.max_pose_gap_s
        )
        if self.pose_lookup is None:
            self.pose_lookup = self._pose_from_stream

    def set_intrinsics(self, intrinsics: Intrinsics) -> list[Frame]:
        self.intrinsics = intrinsics
        return self._flush()

    def add_pose(self, stamp: float, cam_to_world: np.ndarray) -> list[Frame]:
        """One sample of the pose stream (topic mode): cam_to_world [4, 4] at ``stamp`` seconds."""
        self._in_order("pose", stamp, drop_late=False)  # a late sample may still be interpolated
        self._newest_stamp = max(self._newest_stamp, stamp)
        try:
            self._poses.set_transform(_SCENE, _CAMERA, stamp, cam_to_world)
        except TransformError as exc:
            self.dropped[f"pose_sample_{exc.reason}"] += 1
        return self._flush()

    def add_depth(self, stamp: float, depth: np.ndarray) -> list[Frame]:
        self._stream_has_depth = True
        if not self._in_order("depth", stamp):
            return []
        self._push(self._depths, _Stamped(stamp, depth))
        return self._flush()

    def add_image(self, stamp: float, rgb: np.ndarray, frame_id: str = "") -> list[Frame]:
        """rgb [H, W, 3] uint8 at ``stamp`` seconds; ``frame_id``: the image's camera frame (pose_lookup)."""
        self.images_in += 1
        if not self._in_order("image", stamp):
            self.images_dropped += 1
            return []
        self._push(self._pending, _PendingImage(stamp, rgb, frame_id))
        return self._flush()

    def _in_order(self, stream: str, stamp: float, drop_late: bool = True) -> bool:
        """Whether ``stamp`` follows its stream's previous one (class docstring: Stamps); with
        ``drop_late`` False only a clock jump back is acted on."""
        last = self._last_stamp.get(stream)
        if last is not None and stamp <= last:
            if last - stamp <= self.max_wait_s:
                if not drop_late:
                    return True
                self.dropped[f"{stream}_out_of_order"] += 1
                return False
            self.clear()
            self.dropped["time_jump_back"] += 1
        self._last_stamp[stream] = stamp
        return True

    def retry(self) -> list[Frame]:
        """Try the pending images again (e.g. after new transforms arrived in the pose lookup's buffer)."""
        return self._flush()

    @property
    def pending(self) -> int:
        """Images waiting for their pose, depth or camera_info."""
        return len(self._pending)

    def _drop_images(self, reason: str, count: int = 1) -> None:
        if count:
            self.dropped[reason] += count
            self.images_dropped += count

    def clear(self) -> None:
        self._drop_images("cleared", len(self._pending))
        self._poses.clear()
        self._depths.clear()
        self._pending.clear()
        self._last_stamp.clear()
        self._newest_stamp = float("-inf")

    def _push(self, queue: deque, item) -> None:
        self._newest_stamp = max(self._newest_stamp, item.stamp)
        queue.append(item)
        if len(queue) > self.history:
            queue.popleft()
            if queue is self._pending:
                self._drop_images("overflow")

    def _pose_from_stream(self, stamp: float, frame_id: str) -> np.ndarray:
        try:
            return self._poses.lookup(_SCENE, _CAMERA, stamp)
        except UnknownFrameError as exc:
            raise ExtrapolationError("no camera pose received yet", future=True) from exc

    def _find_pose(self, item: _PendingImage) -> tuple[str, bool] | None:
        """Set ``item.cam_to_world`` when its pose is available, else return (drop reason, final):
        final when waiting cannot help (the stamp is before the pose data, or in a gap)."""
        try:
            item.cam_to_world = self.pose_lookup(item.stamp, item.frame_id)
        except TransformError as exc:
            may_come = (isinstance(exc, ExtrapolationError) and exc.future) or isinstance(
                exc, (UnknownFrameError, ConnectivityError)
            )
            return ("no_pose" if isinstance(exc, ExtrapolationError) else f"pose_{exc.reason}"), not may_come
        return None

    def _nearest_depth(self, stamp: float) -> _Stamped | None:
        best = min(self._depths, key=lambda item: abs(item.stamp - stamp), default=None)
        return best if best is not None and abs(best.stamp - stamp) <= self.tolerance_s else None

    def _missing_depth(self, item: _PendingImage) -> tuple[str, bool] | None:
        """(reason, final) while an image without a depth partner must wait or be dropped; None when it
        goes on without depth (class docstring: depth is optional until the first one arrives)."""
        if self._stream_has_depth or self.require_depth:
            depth_passed = bool(self._depths) and self._depths[-1].stamp > item.stamp + self.tolerance_s
            return "no_depth", depth_passed
        if self._depth_given_up or self._last_stamp.get("image", item.stamp) - item.stamp >= self.depth_wait_s:
            self._depth_given_up = True
            return None
        return "no_depth", False

    def _flush(self) -> list[Frame]:
        ready: list[Frame] = []
        still_pending: deque = deque()
        for item in self._pending:
            depth = self._nearest_depth(item.stamp)
            # (reason, final) of what the image still lacks; final: drop it now rather than wait
            missing = ("no_camera_info", False) if self.intrinsics is None else None
            if missing is None and item.cam_to_world is None:
                missing = self._find_pose(item)
            if missing is None and depth is None:
                missing = self._missing_depth(item)
            if missing is None:
                ready.append(
                    Frame(
                        stamp=item.stamp,
                        rgb=item.rgb,
                        intrinsics=self.intrinsics,
                        cam_to_world=item.cam_to_world,
                        depth=None if depth is None else depth.value,
                    )
                )
            elif missing[1] or self._newest_stamp - item.stamp > self.max_wait_s:
                self._drop_images(missing[0])
            else:
                still_pending.append(item)
        self._pending = still_pending
        self.images_out += len(ready)
        return ready


def transform_buffer_for(node: NodeConfig) -> TransformBuffer:
    """The transform buffer the node feeds from /tf and /tf_static (node.tf_cache_s, node.max_extrapolation_s)."""
    return TransformBuffer(cache_s=node.tf_cache_s, max_extrapolation_s=node.max_extrapolation_s)


def synchronizer_for(node: NodeConfig, transforms: TransformBuffer, require_depth: bool = False) -> FrameSynchronizer:
    """The synchronizer for ``node.pose_source`` (images wait node.depth_wait_s for a first depth;
    require_depth: see :class:`FrameSynchronizer`): 'topic' interpolates add_pose's stream within
    node.max_pose_gap_s; 'tf' looks up ``node.scene_frame <- node.camera_frame`` (or the image's frame
    id) in ``transforms`` at the image stamp."""
    depth = {"depth_wait_s": node.depth_wait_s, "require_depth": require_depth}
    if node.pose_source == "topic":
        return FrameSynchronizer(max_pose_gap_s=node.max_pose_gap_s, **depth)
    if node.pose_source == "tf":
        return FrameSynchronizer(pose_lookup=tf_pose_lookup(transforms, node.scene_frame, node.camera_frame), **depth)
    raise ValueError(f"node.pose_source must be 'tf' or 'topic', got {node.pose_source!r}")
