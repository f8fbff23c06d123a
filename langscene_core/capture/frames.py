"""Camera frames and their assembly from separately arriving streams (image, camera_info, depth, pose).

A :class:`Frame` is one posed RGB(-D) view. :class:`FrameSynchronizer` pairs each image with the pose
(and depth, once the stream carries depth) whose stamps are nearest within a tolerance, and with the
latest camera intrinsics. Images that cannot be paired stay pending for a bounded time and are then
dropped and counted by reason, never queued without bound.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from langscene_core.geometry.camera import Intrinsics


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


@dataclass
class _Stamped:
    stamp: float
    value: object


@dataclass
class FrameSynchronizer:
    """Pairs images with the nearest pose and depth by stamp and with the latest intrinsics.

    tolerance_s: largest stamp difference accepted for a pair. Each stream arrives in stamp order, so
    an image is dropped as soon as the stream it lacks has moved past its stamp; max_wait_s: how far
    the newest stamp seen may run ahead of a pending image before it is dropped anyway (a stream that
    stopped). history: how many poses / depths / pending images are kept. ``dropped`` counts dropped images by reason: no_camera_info, no_pose,
    no_depth, overflow.
    """

    tolerance_s: float = 0.02
    max_wait_s: float = 5.0
    history: int = 32
    dropped: Counter = field(default_factory=Counter)
    intrinsics: Intrinsics | None = None
    _poses: deque = field(default_factory=deque)
    _depths: deque = field(default_factory=deque)
    _pending: deque = field(default_factory=deque)
    _stream_has_depth: bool = False
    _newest_stamp: float = float("-inf")

    def set_intrinsics(self, intrinsics: Intrinsics) -> list[Frame]:
        self.intrinsics = intrinsics
        return self._flush()

    def add_pose(self, stamp: float, cam_to_world: np.ndarray) -> list[Frame]:
        self._push(self._poses, _Stamped(stamp, cam_to_world))
        return self._flush()

    def add_depth(self, stamp: float, depth: np.ndarray) -> list[Frame]:
        self._stream_has_depth = True
        self._push(self._depths, _Stamped(stamp, depth))
        return self._flush()

    def add_image(self, stamp: float, rgb: np.ndarray) -> list[Frame]:
        self._push(self._pending, _Stamped(stamp, rgb))
        return self._flush()

    def clear(self) -> None:
        self._poses.clear()
        self._depths.clear()
        self._pending.clear()

    def _push(self, queue: deque, item: _Stamped) -> None:
        self._newest_stamp = max(self._newest_stamp, item.stamp)
        queue.append(item)
        if len(queue) > self.history:
            queue.popleft()
            if queue is self._pending:
                self.dropped["overflow"] += 1

    def _nearest(self, queue: deque, stamp: float) -> _Stamped | None:
        best = min(queue, key=lambda item: abs(item.stamp - stamp), default=None)
        return best if best is not None and abs(best.stamp - stamp) <= self.tolerance_s else None

    def _stream_passed(self, missing: str, stamp: float) -> bool:
        """True when the stream that ``missing`` names already holds stamps later than ``stamp``."""
        queue = {"no_pose": self._poses, "no_depth": self._depths}.get(missing)
        return bool(queue) and queue[-1].stamp > stamp + self.tolerance_s

    def _flush(self) -> list[Frame]:
        ready: list[Frame] = []
        still_pending: deque = deque()
        for item in self._pending:
            pose = self._nearest(self._poses, item.stamp)
            depth = self._nearest(self._depths, item.stamp)
            missing = (
                "no_camera_info"
                if self.intrinsics is None
                else "no_pose"
                if pose is None
                else "no_depth"
                if depth is None and self._stream_has_depth
                else None
            )
            if missing is None:
                ready.append(
                    Frame(
                        stamp=item.stamp,
                        rgb=item.value,
                        intrinsics=self.intrinsics,
                        cam_to_world=pose.value,
                        depth=None if depth is None else depth.value,
                    )
                )
            elif self._stream_passed(missing, item.stamp) or self._newest_stamp - item.stamp > self.max_wait_s:
                self.dropped[missing] += 1
            else:
                still_pending.append(item)
        self._pending = still_pending
        return ready
