"""A ROS-free transform tree with history: tf2's buffer semantics for the core.

Frames form a tree: every frame has at most one parent, and each edge holds the child's pose in its
parent, ``parent_from_child`` ([4, 4] float64; it maps points given in the child frame into the
parent frame, as a ``geometry_msgs/TransformStamped`` with ``header.frame_id`` = parent and
``child_frame_id`` = child does). A static edge has one value valid at every time; a dynamic edge
holds samples over the last ``cache_s`` seconds (at most ``max_samples``), interpolated between the
two samples around the asked time: translation linearly, rotation by slerp.

``lookup(target, source, stamp)`` returns ``target_from_source`` at ``stamp``: the chain from
``source`` up to the common ancestor, then down to ``target`` (tf2's ``lookupTransform(target_frame,
source_frame, time)``). ``stamp=None`` asks for the latest time at which every dynamic edge of the
chain has data (tf2's time zero). Stamps are seconds (float).

Errors are :class:`TransformError` (a ``LookupError``; defined here until the core has one exception
family) with a ``reason`` string for counting: ``unknown_frame``, ``no_chain`` (the frames are in
different trees), ``extrapolation`` (the stamp lies outside an edge's data by more than
``max_extrapolation_s``; ``.future`` says whether later data may still fix it), ``gap`` (the two
samples around the stamp are more than ``max_gap_s`` apart), ``invalid`` (a transform with NaN, a
non-unit quaternion or a non-rigid matrix), ``loop`` (an edge that would close a cycle) and
``old_data`` (a sample older than the cache). All methods are thread-safe.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from langscene_core.errors import TransformError
from langscene_core.geometry.camera import invert_pose

# Largest deviation of a quaternion's norm from 1 accepted (then normalised); tf2 uses the same 0.01.
QUATERNION_NORM_TOLERANCE = 1e-2
# Largest deviation of R^T R from the identity accepted for a rotation given as a matrix.
ROTATION_TOLERANCE = 1e-6


class UnknownFrameError(TransformError):
    reason = "unknown_frame"


class ConnectivityError(TransformError):
    reason = "no_chain"


class ExtrapolationError(TransformError):
    """``future``: the stamp is after the newest data (waiting may help), else before the oldest."""

    reason = "extrapolation"

    def __init__(self, message: str, future: bool):
        super().__init__(message)
        self.future = future


class GapError(TransformError):
    reason = "gap"


class InvalidTransformError(TransformError):
    reason = "invalid"


class LoopError(TransformError):
    reason = "loop"


class OldDataError(TransformError):
    reason = "old_data"


def make_transform(translation: Sequence[float], quaternion: Sequence[float]) -> np.ndarray:
    """Translation [3] metres and unit quaternion [4] (x, y, z, w) -> [4, 4] float64.

    Raises InvalidTransformError for non-finite values or a quaternion whose norm is off 1 by more
    than QUATERNION_NORM_TOLERANCE (the quaternion is normalised otherwise).
    """
    t, q = _checked_translation_quaternion(translation, quaternion)
    return _matrix(t, q)


def _matrix(translation: np.ndarray, q: np.ndarray) -> np.ndarray:
    """[4, 4] of a translation [3] and a unit quaternion [4] (x, y, z, w); the closed form, about 10x
    faster than scipy's Rotation for one quaternion (a lookup converts one per edge)."""
    x, y, z, w = q
    return np.array(
        [
            [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w), 2.0 * (x * z + y * w), translation[0]],
            [2.0 * (x * y + z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w), translation[1]],
            [2.0 * (x * z - y * w), 2.0 * (y * z + x * w), 1.0 - 2.0 * (x * x + y * y), translation[2]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
    """Unit quaternion [4] (x, y, z, w) a ``fraction`` (0..1) of the way from q0 to q1 along the
    shorter arc, at constant angular rate (scipy's Slerp, without its per-call set-up cost)."""
    if np.dot(q0, q1) < 0.0:
        q1 = -q1
    # the angle between q0 and q1 as 4-vectors (half the rotation between them), accurate when small
    omega = 2.0 * math.atan2(np.linalg.norm(q1 - q0), np.linalg.norm(q1 + q0))
    if omega < 1e-9:  # (nearly) equal: the weights' limit
        blended = (1.0 - fraction) * q0 + fraction * q1
    else:
        blended = (math.sin((1.0 - fraction) * omega) * q0 + math.sin(fraction * omega) * q1) / math.sin(omega)
    return blended / np.linalg.norm(blended)


def split_transform(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid [4, 4] -> (translation [3], unit quaternion [4] x, y, z, w). Raises InvalidTransformError."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise InvalidTransformError(f"expected a finite [4, 4] matrix, got shape {matrix.shape}")
    rotation = matrix[:3, :3]
    if (
        np.abs(rotation.T @ rotation - np.eye(3)).max() > ROTATION_TOLERANCE
        or np.linalg.det(rotation) < 0
        or np.abs(matrix[3] - [0.0, 0.0, 0.0, 1.0]).max() > 0
    ):
        raise InvalidTransformError(
            "matrix is not a rigid transform (rotation not orthonormal or last row not 0 0 0 1)"
        )
    return matrix[:3, 3].copy(), Rotation.from_matrix(rotation).as_quat()


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply [4, 4] ``matrix`` to points [N, 3] -> [N, 3] float64."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _checked_translation_quaternion(translation, quaternion) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(translation, dtype=np.float64).reshape(-1)
    q = np.asarray(quaternion, dtype=np.float64).reshape(-1)
    if t.shape != (3,) or q.shape != (4,):
        raise InvalidTransformError(f"expected translation [3] and quaternion [4], got {t.shape} and {q.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
        raise InvalidTransformError("transform has a NaN or infinite value")
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise InvalidTransformError(f"quaternion norm {norm:.4g} is not 1 (x, y, z, w = {q.tolist()})")
    return t, q / norm


@dataclass
class _Edge:
    """The transform from a child frame to its parent: one static value or time-sorted samples."""

    parent: str
    static: bool
    stamps: list[float] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    quaternions: list[np.ndarray] = field(default_factory=list)


class TransformBuffer:
    """Static and dynamic transforms between named frames, looked up along the tree at any stamp.

    cache_s: seconds of history kept per dynamic edge (older samples are dropped as newer ones come).
    max_samples: at most this many samples per dynamic edge (bounds memory at any publishing rate).
    max_extrapolation_s: a lookup up to this far beyond an edge's oldest / newest sample takes that
        sample; further is an ExtrapolationError. 0: no extrapolation (tf2's behaviour).
    max_gap_s: two samples around the asked stamp more than this apart raise GapError (inf: any gap
        interpolates, as tf2 does).
    """

    def __init__(
        self,
        cache_s: float = 10.0,
        max_samples: int = 10000,
        max_extrapolation_s: float = 0.0,
        max_gap_s: float = math.inf,
    ):
        if not cache_s > 0 or max_samples < 1 or max_extrapolation_s < 0 or not max_gap_s > 0:
            raise ValueError(
                f"TransformBuffer needs cache_s > 0, max_samples >= 1, max_extrapolation_s >= 0 and "
                f"max_gap_s > 0 (got {cache_s}, {max_samples}, {max_extrapolation_s}, {max_gap_s})"
            )
        self.cache_s = cache_s
        self.max_samples = max_samples
        self.max_extrapolation_s = max_extrapolation_s
        self.max_gap_s = max_gap_s
        self._edges: dict[str, _Edge] = {}  # child frame -> edge to its parent
        self._lock = threading.Lock()

    # -- writing -------------------------------------------------------------------------------------

    def set_transform(
        self,
        parent: str,
        child: str,
        stamp: float,
        matrix: np.ndarray | None = None,
        translation: Sequence[float] | None = None,
        quaternion: Sequence[float] | None = None,
        static: bool = False,
    ) -> None:
        """Store ``parent_from_child`` at ``stamp``: a rigid [4, 4] ``matrix``, or ``translation`` [3]
        metres with ``quaternion`` [4] (x, y, z, w).

        A static transform replaces the edge's value for all times (its stamp is ignored). A child
        given a different parent, or switched between static and dynamic, starts a new edge (its
        history is dropped). Raises InvalidTransformError, LoopError (the parent is the child or
        one of its descendants) or OldDataError (the stamp is older than the cache); the buffer is
        unchanged then.
        """
        if not parent or not child:
            raise InvalidTransformError(f"empty frame name (parent '{parent}', child '{child}')")
        if matrix is not None:
            t, q = split_transform(matrix)
        elif translation is not None and quaternion is not None:
            t, q = _checked_translation_quaternion(translation, quaternion)
        else:
            raise InvalidTransformError("give either matrix or translation and quaternion")
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise InvalidTransformError(f"transform {parent} -> {child} has a non-finite stamp")
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.parent != parent or edge.static != static:
                self._check_no_loop(parent, child)
                edge = _Edge(parent=parent, static=static)
                self._edges[child] = edge
            if static:
                edge.stamps, edge.translations, edge.quaternions = [stamp], [t], [q]
                return
            self._insert_sample(edge, child, stamp, t, q)

    def _check_no_loop(self, parent: str, child: str) -> None:
        frame: str | None = parent
        while frame is not None:
            if frame == child:
                raise LoopError(
                    f"transform {parent} -> {child} would close a loop ({child} is an ancestor of {parent})"
                )
            edge = self._edges.get(frame)
            frame = edge.parent if edge is not None else None

    def _insert_sample(self, edge: _Edge, child: str, stamp: float, t: np.ndarray, q: np.ndarray) -> None:
        if edge.stamps and stamp < edge.stamps[-1] - self.cache_s:
            raise OldDataError(
                f"transform {edge.parent} -> {child} at {stamp:.3f} s is older than the cache "
                f"(newest {edge.stamps[-1]:.3f} s, cache {self.cache_s} s)"
            )
        index = bisect.bisect_left(edge.stamps, stamp)
        if index < len(edge.stamps) and edge.stamps[index] == stamp:  # a repeated stamp: the latest value wins
            edge.translations[index], edge.quaternions[index] = t, q
            return
        edge.stamps.insert(index, stamp)
        edge.translations.insert(index, t)
        edge.quaternions.insert(index, q)
        oldest_kept = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_s)
        oldest_kept = max(oldest_kept, len(edge.stamps) - self.max_samples)
        if oldest_kept > 0:
            del edge.stamps[:oldest_kept], edge.translations[:oldest_kept], edge.quaternions[:oldest_kept]

    def clear(self) -> None:
        """Forget every transform (static ones too)."""
        with self._lock:
            self._edges.clear()

    # -- reading -------------------------------------------------------------------------------------

    def frames(self) -> set[str]:
        """Every frame named by a stored transform."""
        with self._lock:
            return set(self._edges) | {edge.parent for edge in self._edges.values()}

    def lookup(self, target: str, source: str, stamp: float | None = None) -> np.ndarray:
        """``target_from_source`` [4, 4] float64 at ``stamp`` (seconds; None: the latest common time).

        Raises UnknownFrameError, ConnectivityError, ExtrapolationError or GapError naming the
        frames and times.
        """
        with self._lock:
            up_source, up_target = self._chain_to_common_ancestor(target, source)
            if stamp is None:
                stamp = self._latest_common_stamp(up_source + up_target)
            ancestor_from_source = self._compose(up_source, stamp)
            ancestor_from_target = self._compose(up_target, stamp)
        return invert_pose(ancestor_from_target) @ ancestor_from_source

    def latest_stamp(self, target: str, source: str) -> float:
        """The stamp ``lookup(target, source)`` uses: the latest time at which every dynamic edge
        between the frames has data; 0.0 when the chain is static (tf2's "latest"). Raises as lookup."""
        with self._lock:
            up_source, up_target = self._chain_to_common_ancestor(target, source)
            return self._latest_common_stamp(up_source + up_target)

    def _path_to_root(self, frame: str) -> list[str]:
        """[frame, parent, grandparent, ..., root]."""
        path = [frame]
        while (edge := self._edges.get(path[-1])) is not None:
            path.append(edge.parent)
        return path

    def _chain_to_common_ancestor(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """The child frames whose edges lead from source (and from target) up to their common ancestor."""
        known = set(self._edges) | {edge.parent for edge in self._edges.values()}
        for name, frame in (("target", target), ("source", source)):
            if frame not in known:
                raise UnknownFrameError(
                    f"{name} frame '{frame}' does not exist (known frames: {', '.join(sorted(known)) or 'none'})"
                )
        source_path, target_path = self._path_to_root(source), self._path_to_root(target)
        if source_path[-1] != target_path[-1]:
            raise ConnectivityError(
                f"no transform chain from '{source}' to '{target}': they are in different trees "
                f"(roots '{source_path[-1]}' and '{target_path[-1]}')"
            )
        on_target_path = set(target_path)
        ancestor = next(frame for frame in source_path if frame in on_target_path)
        return source_path[: source_path.index(ancestor)], target_path[: target_path.index(ancestor)]

    def _latest_common_stamp(self, children: list[str]) -> float:
        dynamic = [self._edges[child].stamps[-1] for child in children if not self._edges[child].static]
        return min(dynamic, default=0.0)

    def _compose(self, children: list[str], stamp: float) -> np.ndarray:
        """ancestor_from_children[0]: the product of the edges from children[0] upwards."""
        result = np.eye(4)
        for child in children:
            result = self._edge_at(child, stamp) @ result
        return result

    def _edge_at(self, child: str, stamp: float) -> np.ndarray:
        edge = self._edges[child]
        stamps = edge.stamps
        if edge.static:
            return _matrix(edge.translations[0], edge.quaternions[0])
        index = bisect.bisect_left(stamps, stamp)
        if index < len(stamps) and stamps[index] == stamp:
            return _matrix(edge.translations[index], edge.quaternions[index])
        if index == 0 or index == len(stamps):
            nearest = 0 if index == 0 else len(stamps) - 1
            if abs(stamps[nearest] - stamp) > self.max_extrapolation_s:
                raise ExtrapolationError(
                    f"transform {edge.parent} -> {child} asked at {stamp:.6f} s, data from "
                    f"{stamps[0]:.6f} to {stamps[-1]:.6f} s ({len(stamps)} samples, "
                    f"max_extrapolation_s {self.max_extrapolation_s})",
                    future=index == len(stamps),
                )
            return _matrix(edge.translations[nearest], edge.quaternions[nearest])
        before, after = stamps[index - 1], stamps[index]
        if after - before > self.max_gap_s:
            raise GapError(
                f"transform {edge.parent} -> {child} asked at {stamp:.6f} s between samples "
                f"{after - before:.3f} s apart (max_gap_s {self.max_gap_s})"
            )
        fraction = (stamp - before) / (after - before)
        translation = (1.0 - fraction) * edge.translations[index - 1] + fraction * edge.translations[index]
        return _matrix(translation, slerp(edge.quaternions[index - 1], edge.quaternions[index], fraction))
