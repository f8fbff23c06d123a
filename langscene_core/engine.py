"""The ROS-free engine: camera input -> keyframes -> a background reconstruction -> a queryable snapshot.

:class:`LangScene` is what the node, ``langscene eval``, the demo and the benches drive (DESIGN.md 1
and 1b). It owns the models (loaded explicitly, :meth:`LangScene.load_models`), the frame
synchronizer and the keyframe buffer, runs one reconstruction at a time in a background thread
(progress reported, cancellable between steps), and holds the current :class:`QueryableScene`, an
immutable snapshot swapped whole when a reconstruction finishes or a scene is loaded. Queries read
the snapshot current when they start and never wait for a reconstruction.

States (:class:`State`, the strings ``SceneStatus.state`` carries)::

    idle --frame accepted as keyframe--> collecting --start_reconstruction--> reconstructing
    reconstructing --done--> ready          (new snapshot)
    reconstructing --failed--> error        (the previous snapshot, if any, stays queryable)
    reconstructing --cancelled--> ready | collecting | idle   (the previous snapshot stays)
    any --load--> ready (loaded snapshot);  reset: keyframes cleared, idle when there is no snapshot
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

import numpy as np

from langscene_core.capture.frames import Frame, synchronizer_for, transform_buffer_for
from langscene_core.capture.keyframes import KeyframeBuffer
from langscene_core.config import DensifyConfig, GraspConfig, LangsceneConfig, QueryConfig, from_dict, to_dict
from langscene_core.errors import BusyError, NotReadyError, RequestError
from langscene_core.geometry.camera import Intrinsics
from langscene_core.query.answer import CodeLevels, TextEmbeddingCache, check_rivals, code_levels, scene_relevancy
from langscene_core.query.limits import validate_query_request
from langscene_core.query.objects import QueryResult, Tabletop, query_object, tabletop_of
from langscene_core.reconstruction.models import Models, load_models
from langscene_core.reconstruction.reconstruct import ReconstructionError, reconstruct
from langscene_core.reconstruction.scene import Scene, SceneFileError
from langscene_core.reconstruction.store import SceneStore

_log = logging.getLogger(__name__)


class State(str, Enum):
    """The engine's state; the value is the ``SceneStatus.state`` string."""

    IDLE = "idle"
    COLLECTING = "collecting"
    RECONSTRUCTING = "reconstructing"
    READY = "ready"
    ERROR = "error"


class Cancelled(Exception):
    """Raised inside a reconstruction at its next progress report after :meth:`LangScene.cancel`."""


@dataclass(frozen=True)
class QueryOptions:
    """Per-query overrides; None (or empty) takes the scene's :class:`~langscene_core.config.QueryConfig`
    / :class:`~langscene_core.config.GraspConfig` value.

    negatives: extra negative phrases, added to ``query.negatives``. relevancy_threshold: in [0, 1).
    max_points: most Gaussians in the relevancy cloud (>= 1). max_grasps: most grasps (>= 1).
    max_objects: the answer's object and up to max_objects - 1 alternatives (None or 1: none).
    Raises RequestError (a ValueError: the caller's mistake, BAD_REQUEST) on a value out of range.
    """

    negatives: tuple[str, ...] = ()
    relevancy_threshold: float | None = None
    max_points: int | None = None
    max_grasps: int | None = None
    max_objects: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "negatives", tuple(self.negatives))
        t = self.relevancy_threshold
        if t is not None and not (np.isfinite(t) and 0.0 <= t < 1.0):
            raise RequestError(f"relevancy_threshold {t} is not in [0, 1)")
        for name in ("max_points", "max_grasps", "max_objects"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RequestError(f"{name} must be at least 1, got {value}")


@dataclass(frozen=True, eq=False)
class QueryableScene:
    """A scene with what every query on it reuses, computed once (:meth:`build`): its tabletop (the
    support plane and every Gaussian's height above it) and its LQC codes per level; plus the models
    and settings its answers use. Immutable: a new scene makes a new one.

    cache: text embeddings of ``models.clip`` shared across queries (None: every phrase encoded afresh).
    Answers: the last ``query.answer_cache`` distinct (prompt, options) answers are kept, least recently
    used dropped first; a repeated request gets the kept :class:`QueryResult` (the scene is immutable,
    so it is the same answer) without the work. Callers must not modify a result's arrays.
    """

    scene: Scene
    models: Models
    query: QueryConfig
    grasp: GraspConfig
    tabletop: Tabletop
    codes: CodeLevels
    cache: TextEmbeddingCache | None = None
    _answers: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _answers_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def build(
        cls,
        scene: Scene,
        models: Models,
        query: QueryConfig,
        grasp: GraspConfig,
        cache: TextEmbeddingCache | None = None,
    ) -> QueryableScene:
        return cls(scene, models, query, grasp, tabletop_of(scene.means, query), code_levels(scene.codes), cache)

    @property
    def num_gaussians(self) -> int:
        return self.scene.num_gaussians

    def answer(self, prompt: str, options: QueryOptions = QueryOptions()) -> QueryResult:
        """A text query, whole: relevancy of every Gaussian through the code table
        (:func:`~langscene_core.query.answer.scene_relevancy` against ``query.negatives`` and
        ``options.negatives``), then :meth:`locate`, then the open-set check
        (:func:`~langscene_core.query.answer.check_rivals` with ``query.rival_margin``). Scene frame.
        ``result.timings`` adds ``relevancy`` (seconds). Raises ValueError on an empty prompt."""
        key = (prompt, options)
        with self._answers_lock:
            kept = self._answers.get(key)
            if kept is not None:
                self._answers.move_to_end(key)
                return kept
        result = self._answer(prompt, options)
        if self.query.answer_cache:
            with self._answers_lock:
                self._answers[key] = result
                while len(self._answers) > self.query.answer_cache:
                    self._answers.popitem(last=False)
        return result

    def _answer(self, prompt: str, options: QueryOptions) -> QueryResult:
        start = time.perf_counter()
        relevancy = scene_relevancy(
            self.codes,
            self.models,
            prompt,
            self.query.negatives,
            options.negatives,
            self.cache,
            level_margin=self.query.level_margin,
        )
        seconds = time.perf_counter() - start
        result = self.locate(relevancy.values, options)
        result = check_rivals(result, self.codes, self.models, prompt, self.query.rival_margin, self.cache)
        return replace(result, timings={"relevancy": seconds, **result.timings})

    def locate(self, relevancy: np.ndarray, options: QueryOptions = QueryOptions()) -> QueryResult:
        """The relevancy cloud, the object, its box and grasps for a given relevancy [N] float32 of
        every Gaussian (:func:`~langscene_core.query.objects.query_object` on this scene's arrays, with
        its tabletop; ``options.negatives`` unused)."""
        scene = self.scene
        return query_object(
            relevancy,
            scene.means,
            scene.colors,
            self.query,
            self.grasp,
            scene.normals,
            threshold=options.relevancy_threshold,
            max_points=options.max_points,
            max_grasps=options.max_grasps,
            max_objects=options.max_objects or 1,
            tabletop=self.tabletop,
        )


@dataclass(frozen=True)
class Status:
    """What the engine reports (``SceneStatus``). rejected / dropped: counts per reason of rejected input
    messages and of frames the synchronizer or the keyframe buffer dropped. images: where every image
    given to :meth:`LangScene.add_image` went, since start: ``received`` == ``rejected`` (refused before
    pairing, or sized unlike camera_info) + ``dropped`` (by the synchronizer) + ``pending`` + the keyframe
    buffer's verdicts ``accepted``, ``too_close`` and ``blurry`` (redundant) and ``full``."""

    state: State
    keyframes: int
    gaussians: int
    progress: float
    message: str
    models_loaded: bool
    rejected: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: the message, then the rejected total and the dropped counts."""
        dropped = ", ".join(f"{reason} {n}" for reason, n in sorted(self.dropped.items()) if n) or "none"
        return f"{self.message}; rejected {sum(self.rejected.values())}; dropped: {dropped}"


class LangScene:
    """The engine (module docstring). Thread-safe: every method may be called from any thread.

    config: the whole configuration (``node.scene_frame`` is the scene frame). models: already loaded
    models to use (e.g. shared by an evaluation); None: :meth:`load_models` loads ``config.models``.
    on_status: called with the new :class:`Status` after every state change (not after every progress
    report). on_scene: called with each newly installed :class:`QueryableScene`, before on_status.
    Both run on the thread that made the change and must not call back into a reconstruction.
    clock: the current time in the stamps' time base, seconds (the node's ROS clock, which follows
    /clock under use_sim_time); inputs stamped more than ``node.max_future_s`` ahead of it are
    rejected. None (offline ingestion of recorded data): stamps are not compared with a clock.
    """

    def __init__(
        self,
        config: LangsceneConfig,
        models: Models | None = None,
        on_status: Callable[[Status], None] | None = None,
        on_scene: Callable[[QueryableScene], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._on_status = on_status or (lambda status: None)
        self._on_scene = on_scene or (lambda scene: None)
        self._lock = threading.RLock()  # guards everything below but the models (re-entrant: status())
        self._keyframes = KeyframeBuffer(config.keyframe)
        # Camera poses: node.pose_source 'topic' (add_pose, interpolated within node.max_pose_gap_s) or
        # 'tf' (looked up in ``transforms``, which the caller feeds from /tf and /tf_static).
        self.transforms = transform_buffer_for(config.node)
        # the depth mask mapper cuts keyframes by their depth, and a keyframe without depth stops the
        # reconstruction: every image waits for its depth then, the first one too
        self._sync = synchronizer_for(config.node, self.transforms, require_depth=config.models.masks.mapper == "depth")
        self._rejected: Counter[str] = Counter()
        self._images: Counter[str] = Counter()  # Status.images but for the synchronizer's counts
        # node.auto_reconstruct_*: keyframes taken since the last reconstruction began, the stamps of the
        # newest keyframe and of the newest frame offered (data time, so a played bag behaves alike)
        self._new_keyframes = 0
        self._last_keyframe_stamp = -np.inf
        self._last_frame_stamp = -np.inf
        self._state = State.IDLE
        self._message = "waiting for camera frames" if models is not None else "models not loaded"
        self._progress = 0.0
        self._snapshot: QueryableScene | None = None  # swapped whole, read without the lock
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()
        self._models_lock = threading.Lock()
        self._models: Models | None = None
        self._cache: TextEmbeddingCache | None = None
        if models is not None:
            self._set_models(models)

    # ------------------------------------------------------------------------------------ models
    def _set_models(self, models: Models) -> None:
        self._models, self._cache = models, TextEmbeddingCache(models.clip)

    def load_models(self) -> Models:
        """Load ``config.models`` (once; FileNotFoundError / ValueError name a missing or mismatched one)."""
        with self._models_lock:
            if self._models is None:
                self._set_idle_message("loading models")
                start = time.perf_counter()
                self._set_models(load_models(self.config.models, self.config.densify))
                self._set_idle_message(
                    f"models loaded in {time.perf_counter() - start:.1f} s; waiting for camera frames"
                )
            return self._models

    def _set_idle_message(self, message: str) -> None:
        """The status message while nothing else happens (frames arriving meanwhile have their own)."""
        with self._lock:
            if self._state is State.IDLE:
                self._message = message
        self._notify()

    @property
    def models(self) -> Models:
        """The loaded models; NotReadyError before :meth:`load_models`."""
        models = self._models
        if models is None:
            raise NotReadyError("models not loaded (LangScene.load_models)")
        return models

    # ------------------------------------------------------------------------------------ capture
    def set_intrinsics(self, intrinsics: Intrinsics) -> None:
        with self._lock:
            frames = self._sync.set_intrinsics(intrinsics)
        self._take(frames)

    def _admit(self, stream: str, stamp: float, shape: tuple[int, ...] = ()) -> bool:
        """Whether an input of ``stream`` at ``stamp`` with array ``shape`` ([H, W, ...]; () for a pose)
        may go on; else it is counted as rejected with the reason (``node.max_future_s``,
        ``limits.max_image_pixels``)."""
        if self._clock is not None and stamp - self._clock() > self.config.node.max_future_s:
            self.reject(f"{stream}: stamped more than {self.config.node.max_future_s} s ahead of the clock")
            return False
        if shape and shape[0] * shape[1] > self.config.limits.max_image_pixels:
            self.reject(f"{stream}: more than {self.config.limits.max_image_pixels} pixels (limits.max_image_pixels)")
            return False
        return True

    def add_pose(self, stamp: float, cam_to_world: np.ndarray) -> None:
        """cam_to_world: [4, 4] camera optical frame -> scene frame, at ``stamp`` seconds; only with
        ``node.pose_source: topic`` (with 'tf' the poses come from :attr:`transforms`, and a pose given
        here is rejected with that reason rather than silently unused)."""
        if self.config.node.pose_source != "topic":
            self.reject(f"camera_pose: node.pose_source is {self.config.node.pose_source}, not topic")
            return
        if not self._admit("camera_pose", stamp):
            return
        with self._lock:
            frames = self._sync.add_pose(stamp, cam_to_world)
        self._take(frames)

    def add_depth(self, stamp: float, depth: np.ndarray) -> None:
        """depth: [H, W] float32 metres (NaN = none)."""
        if not self._admit("depth", stamp, depth.shape):
            return
        with self._lock:
            frames = self._sync.add_depth(stamp, depth)
        self._take(frames)

    def add_image(self, stamp: float, rgb: np.ndarray, frame_id: str = "") -> None:
        """rgb: [H, W, 3] uint8; frame_id: the image's camera frame (node.pose_source 'tf' looks it up
        unless node.camera_frame is set)."""
        with self._lock:
            self._images["received"] += 1
        if not self._admit("image", stamp, rgb.shape):
            with self._lock:
                self._images["rejected"] += 1
            return
        with self._lock:
            frames = self._sync.add_image(stamp, rgb, frame_id)
        self._take(frames)

    def keyframes(self) -> list[Frame]:
        """The keyframes held now, in the order they were taken (a copy of the list; frames are shared)."""
        with self._lock:
            return list(self._keyframes.keyframes)

    def transforms_updated(self) -> None:
        """New transforms arrived in :attr:`transforms`: images waiting for their pose are tried again."""
        with self._lock:
            frames = self._sync.retry()
        self._take(frames)

    def add_frame(self, frame: Frame) -> str:
        """Offer one posed frame to the keyframe buffer. Returns the buffer's verdict ('accepted',
        'too_close', 'blurry', 'full') or 'rejected' (image and intrinsics / depth sizes disagree)."""
        size = (frame.intrinsics.height, frame.intrinsics.width)
        if frame.rgb.shape[:2] != size:
            self.reject(
                f"image: size {frame.rgb.shape[1]}x{frame.rgb.shape[0]} does not match camera_info {size[1]}x{size[0]}"
            )
            return "rejected"
        if frame.depth is not None and frame.depth.shape != size:
            self.reject("depth: size does not match the image")
            return "rejected"
        with self._lock:
            verdict = self._keyframes.offer(frame)
            self._last_frame_stamp = max(self._last_frame_stamp, frame.stamp)
            if verdict == "accepted":
                self._new_keyframes += 1
                self._last_keyframe_stamp = frame.stamp
            if verdict == "accepted" and self._state in (State.IDLE, State.COLLECTING):
                self._state = State.COLLECTING
                self._message = f"{len(self._keyframes.keyframes)} keyframes"
        self._auto_reconstruct()
        return verdict

    def _auto_reconstruct(self) -> None:
        """Start a reconstruction when node.auto_reconstruct_keyframes new keyframes arrived, or when new
        keyframes wait and the newest frame is node.auto_reconstruct_still_s past the newest keyframe
        (the camera is still). Not while one runs, nor with fewer than 2 keyframes; the status message
        says which rule started it."""
        node = self.config.node
        with self._lock:
            new, still = self._new_keyframes, self._last_frame_stamp - self._last_keyframe_stamp
            if new == 0 or self.busy or len(self._keyframes.keyframes) < 2 or self._models is None:
                return
        if node.auto_reconstruct_keyframes and new >= node.auto_reconstruct_keyframes:
            reason = f"{new} new keyframes (node.auto_reconstruct_keyframes)"
        elif node.auto_reconstruct_still_s and still >= node.auto_reconstruct_still_s:
            reason = f"no new keyframe for {still:.1f} s (node.auto_reconstruct_still_s)"
        else:
            return
        try:
            self.start_reconstruction(why=f"auto: {reason}")
        except BusyError:  # another thread started one between the check and here
            return

    def _take(self, frames: list[Frame]) -> None:
        """Offer the synchronizer's frames to the keyframe buffer, counting each verdict."""
        for frame in frames:
            verdict = self.add_frame(frame)
            with self._lock:
                self._images[verdict] += 1

    def reject(self, reason: str) -> int:
        """Count one rejected input message; returns how many were rejected for ``reason``."""
        with self._lock:
            self._rejected[reason] += 1
            return self._rejected[reason]

    # ------------------------------------------------------------------------------------ status
    def status(self) -> Status:
        with self._lock:
            snapshot = self._snapshot
            return Status(
                state=self._state,
                keyframes=len(self._keyframes.keyframes),
                gaussians=0 if snapshot is None else snapshot.num_gaussians,
                progress=float(self._progress),
                message=self._message,
                models_loaded=self._models is not None,
                rejected=dict(self._rejected),
                dropped=dict(Counter(self._sync.dropped, keyframe_buffer_full=self._keyframes.counts["full"])),
                images=dict(
                    Counter(self._images, dropped=self._sync.images_dropped, pending=self._sync.pending),
                ),
            )

    def _notify(self) -> None:
        self._on_status(self.status())

    @property
    def state(self) -> State:
        return self._state

    @property
    def scene(self) -> QueryableScene | None:
        """The current snapshot (None before the first reconstruction or load)."""
        return self._snapshot

    # ------------------------------------------------------------------------------------ reconstruct
    @property
    def busy(self) -> bool:
        """Whether a background reconstruction is running."""
        worker = self._worker
        return worker is not None and worker.is_alive()

    def start_reconstruction(self, mode: str = "", why: str = "") -> str:
        """Reconstruct the current keyframes in a background thread; returns a message. ``mode``: the
        ``densify.mode`` of this run ('' : the configured one); ``why``: said in the status message
        ("reconstructing from N keyframes (why)"). Raises BusyError while one runs,
        ReconstructionError with fewer than 2 keyframes, NotReadyError without models, ConfigError for an
        unknown mode."""
        models = self.models
        config = self.config
        if mode:
            densify = from_dict(DensifyConfig, {**to_dict(config.densify), "mode": mode}, "densify.")
            config = replace(config, densify=densify)
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                raise BusyError("a reconstruction is already running")
            keyframes = list(self._keyframes.keyframes)
            if len(keyframes) < 2:
                raise ReconstructionError(f"need at least 2 keyframes, have {len(keyframes)}")
            self._begin(len(keyframes), why)
            # The status saying why is taken before the worker starts: its first progress report replaces
            # the message, and on_status must still see this state change.
            began = self.status()
            self._worker = threading.Thread(
                target=self._run, args=(keyframes, models, config), name="langscene-reconstruct", daemon=True
            )
            self._worker.start()
        self._on_status(began)
        return f"reconstruction started from {len(keyframes)} keyframes"

    def reconstruct(self, keyframes: Sequence[Frame] | None = None) -> QueryableScene:
        """Reconstruct in the calling thread (``keyframes``, else the buffer's) and install the result.
        Raises what :meth:`start_reconstruction` raises, and ReconstructionError / Cancelled when it fails."""
        models = self.models
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                raise BusyError("a reconstruction is already running")
            frames = list(self._keyframes.keyframes if keyframes is None else keyframes)
            self._worker = threading.current_thread()
            self._begin(len(frames))
        self._notify()
        try:
            return self._reconstruct(frames, models, self.config)
        finally:
            with self._lock:
                self._worker = None

    def _begin(self, count: int, why: str = "") -> None:
        self._cancel.clear()
        self._new_keyframes = 0
        self._state, self._progress = State.RECONSTRUCTING, 0.0
        self._message = f"reconstructing from {count} keyframes" + (f" ({why})" if why else "")

    def _run(self, keyframes: list[Frame], models: Models, config: LangsceneConfig) -> None:
        """Worker thread: failures end in the status, never in an exception lost in the thread."""
        try:
            self._reconstruct(keyframes, models, config)
        except Exception:  # noqa: BLE001 - _reconstruct put it in the status (and logged a crash's traceback)
            pass

    def _reconstruct(self, keyframes: list[Frame], models: Models, config: LangsceneConfig) -> QueryableScene:
        def progress(fraction: float, message: str) -> None:
            if self._cancel.is_set():
                raise Cancelled
            with self._lock:
                self._progress, self._message = float(fraction), message

        try:
            scene = reconstruct(keyframes, models, config, progress)
            notes = "; ".join(scene.info.get("notes", []))
            message = f"{scene.num_gaussians} Gaussians from {len(keyframes)} keyframes" + (
                f" ({notes})" if notes else ""
            )
            return self._install(scene, message)
        except Cancelled:
            with self._lock:
                self._state = (
                    State.READY
                    if self._snapshot is not None
                    else State.COLLECTING
                    if self._keyframes.keyframes
                    else State.IDLE
                )
                self._message = "reconstruction cancelled" + ("; the previous scene is kept" if self._snapshot else "")
            self._notify()
            raise
        except (ReconstructionError, ValueError, OSError) as exc:
            self._fail(f"reconstruction failed: {exc}")
            raise
        except Exception as exc:  # a bug: the traceback logged, the error in the status, re-raised
            _log.exception("reconstruction crashed")
            self._fail(f"reconstruction crashed: {exc!r}")
            raise

    def _fail(self, message: str) -> None:
        with self._lock:
            self._state, self._message = State.ERROR, message
        self._notify()

    def cancel(self) -> bool:
        """Ask the running reconstruction to stop at its next step (the previous scene stays); returns
        whether one was running. :meth:`wait` for it to end."""
        if not self.busy:
            return False
        self._cancel.set()
        return True

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the background reconstruction to end; True when none runs any more."""
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout_s)
        return not self.busy

    def _install(self, scene: Scene, message: str) -> QueryableScene:
        """Swap in a new snapshot (built outside the lock), then tell the listeners."""
        snapshot = QueryableScene.build(scene, self.models, self.config.query, self.config.grasp, self._cache)
        with self._lock:
            self._snapshot = snapshot
            self._state, self._message, self._progress = State.READY, message, 1.0
        self._on_scene(snapshot)
        self._notify()
        return snapshot

    # ------------------------------------------------------------------------------------ query, files
    def query(self, prompt: str, options: QueryOptions = QueryOptions()) -> QueryResult:
        """Answer ``prompt`` on the current snapshot (:meth:`QueryableScene.answer`). Raises RequestError
        (a ValueError) when the request breaks ``limits.*`` (empty or overlong prompt, too many negatives,
        counts out of range), NotReadyError when there is no scene yet."""
        validate_query_request(
            prompt,
            options.negatives,
            self.config.limits,
            max_points=options.max_points or 0,
            max_grasps=options.max_grasps or 0,
            max_objects=options.max_objects or 0,
        )
        snapshot = self._snapshot  # one snapshot for the whole query
        if snapshot is None:
            with self._lock:
                state, count = self._state.value, len(self._keyframes.keyframes)
            raise NotReadyError(
                f"scene not ready ({state}, {count} keyframes): collect keyframes and reconstruct, or load a scene"
            )
        return snapshot.answer(prompt, options)

    @functools.cached_property
    def store(self) -> SceneStore:
        """Where :meth:`save` and :meth:`load` read and write: ``node.scene_dir``, created on first use."""
        return SceneStore(self.config.node.scene_dir, int(self.config.limits.scene_min_free_mb * 2**20))

    def save(self, name: str | Path) -> tuple[Path, int]:
        """Write the current scene as ``name`` inside ``node.scene_dir`` (:class:`SceneStore`); returns the
        absolute PLY path and the Gaussians written. NotReadyError without a scene; SceneLocationError for
        a name outside the directory; SceneFileError / OSError when it cannot be written."""
        snapshot = self._snapshot
        if snapshot is None:
            raise NotReadyError("no scene to save: reconstruct or load one first")
        return self.store.save(snapshot.scene, name), snapshot.num_gaussians

    def load(self, name: str | Path) -> QueryableScene:
        """Read the scene saved as ``name`` inside ``node.scene_dir`` and install it. SceneLocationError for
        a name outside the directory; SceneFileError when it cannot be read, was built with another LQC or
        lies in another frame than ``node.scene_frame``."""
        models = self.models
        scene, path = self.store.load(name, models.lqc, self.config.models.lqc.checkpoint)
        frame = self.config.node.scene_frame
        if scene.frame_id != frame:
            raise SceneFileError(f"scene is in frame '{scene.frame_id}', the scene frame is '{frame}'")
        return self._install(scene, f"loaded {scene.num_gaussians} Gaussians from {path}")

    def update_config(self, query: QueryConfig, grasp: GraspConfig) -> None:
        """Take new ``query`` and ``grasp`` settings (already checked): the next query answers with them.
        The current snapshot is rebuilt with them and swapped in (its kept answers go with the old one);
        a reconstruction running now installs its scene with them."""
        with self._lock:
            self.config = replace(self.config, query=query, grasp=grasp)
            snapshot = self._snapshot
        if snapshot is None:
            return
        rebuilt = QueryableScene.build(snapshot.scene, snapshot.models, query, grasp, self._cache)
        with self._lock:
            if self._snapshot is snapshot:  # else a newer scene, built with the new settings, came meanwhile
                self._snapshot = rebuilt

    def clear_scene(self) -> str:
        """Drop the current scene: queries answer NotReadyError until a reconstruction or a load installs
        another. The keyframes stay; a reconstruction running now still installs its result. Returns a
        message."""
        with self._lock:
            had = self._snapshot is not None
            self._snapshot = None
            if self._state in (State.READY, State.ERROR):
                self._state = State.COLLECTING if self._keyframes.keyframes else State.IDLE
                self._progress = 0.0
            self._message = "scene cleared" if had else "no scene to clear"
        self._notify()
        return (
            "scene cleared; queries answer 'not ready' until a reconstruction or a load" if had else "no scene to clear"
        )

    def reset(self) -> str:
        """Clear the keyframes and pending input; the current scene, if any, is kept. Returns a message."""
        with self._lock:
            self._keyframes.clear()
            self._sync.clear()
            self._new_keyframes = 0
            if self._snapshot is None and self._state is not State.RECONSTRUCTING:
                self._state, self._message, self._progress = State.IDLE, "reset: waiting for camera frames", 0.0
            elif self._snapshot is not None:
                self._message = "keyframes cleared; the current scene is kept"
        self._notify()
        return "keyframes cleared (the current scene, if any, is kept)"
