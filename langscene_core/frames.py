"""Camera frames and their assembly from separately arriving streams (image, depth, pose).

A :class:`Frame` is one posed RGB(-D) view. :class:`FrameSynchronizer` pairs each image with the pose
(and depth, once the stream carries depth) whose stamps are nearest within a tolerance; images that
cannot be paired stay pending for a bounded time and are then dropped and counted, never queued
without bound.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from langscene_core.camera import Intrinsics


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
    depth: Optional[np.ndarray] = None


@dataclass
class _Stamped:
    stamp: float
    value: object


@dataclass
class FrameSynchronizer:
    """Pairs images with the nearest pose and depth by stamp.

    tolerance_s: largest stamp difference accepted for a pair. max_wait_s: how far the newest stamp
    seen may run ahead of a pending image before it is dropped as unpairable. history: how many poses /
    depths / pending images are kept.
    """

    tolerance_s: float = 0.02
    max_wait_s: float = 1.0
    history: int = 32
    dropped_unpaired: int = 0
    _poses: deque = field(default_factory=deque)
    _depths: deque = field(default_factory=deque)
    _pending: deque = field(default_factory=deque)
    _stream_has_depth: bool = False

    def add_pose(self, stamp: float, cam_to_world: np.ndarray) -> list[Frame]:
        self._push(self._poses, _Stamped(stamp, cam_to_world))
        return self._flush(stamp)

    def add_depth(self, stamp: float, depth: np.ndarray) -> list[Frame]:
        self._stream_has_depth = True
        self._push(self._depths, _Stamped(stamp, depth))
        return self._flush(stamp)

    def add_image(self, stamp: float, rgb: np.ndarray, intrinsics: Intrinsics) -> list[Frame]:
        self._push(self._pending, _Stamped(stamp, (rgb, intrinsics)))
        return self._flush(stamp)

    def clear(self) -> None:
        self._poses.clear()
        self._depths.clear()
        self._pending.clear()

    def _push(self, queue: deque, item: _Stamped) -> None:
        queue.append(item)
        if len(queue) > self.history:
            queue.popleft()
            if queue is self._pending:
                self.dropped_unpaired += 1

    def _nearest(self, queue: deque, stamp: float) -> Optional[_Stamped]:
        best = min(queue, key=lambda item: abs(item.stamp - stamp), default=None)
        return best if best is not None and abs(best.stamp - stamp) <= self.tolerance_s else None

    def _flush(self, newest_stamp: float) -> list[Frame]:
        ready: list[Frame] = []
        still_pending: deque = deque()
        for item in self._pending:
            pose = self._nearest(self._poses, item.stamp)
            depth = self._nearest(self._depths, item.stamp)
            rgb, intrinsics = item.value
            if pose is not None and (depth is not None or not self._stream_has_depth):
                ready.append(Frame(stamp=item.stamp, rgb=rgb, intrinsics=intrinsics, cam_to_world=pose.value,
                                   depth=None if depth is None else depth.value))
            elif newest_stamp - item.stamp > self.max_wait_s:
                self.dropped_unpaired += 1
            else:
                still_pending.append(item)
        self._pending = still_pending
        return ready
