"""Scene files confined to one directory: what a client may name when it saves or loads a scene.

A node usually runs as root on a robot, and any process on its ROS domain can call its file services.
:class:`SceneStore` therefore resolves every name a request gives inside ``node.scene_dir`` and refuses
anything that would leave it (an absolute path elsewhere, ``..``, a symlink pointing out), refuses a
save when the disk would be left with less than ``limits.scene_min_free_mb`` free, and (through
:func:`~langscene_core.reconstruction.scene.save_scene`) never replaces a file langscene did not write.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from langscene_core.errors import control_character
from langscene_core.field.ply import property_names, sidecar_path
from langscene_core.language.lqc import LQC
from langscene_core.reconstruction.scene import Scene, SceneFileError, load_scene, ply_path_of, save_scene

# One save at a time in this process: a save removes the pending files earlier saves of the scene left,
# so two concurrent saves of one scene could remove each other's (save_ply's single-writer rule)
_SAVE_LOCK = threading.Lock()


class SceneLocationError(SceneFileError):
    """A requested scene path that lies outside the scene directory (a bad request, not a file fault).
    (A SceneFileError until ``langscene_core/errors.py`` gives the family its bad-request class.)"""


def default_scene_dir() -> Path:
    """``$ROS_HOME/langscene/scenes``, ROS_HOME defaulting to ``~/.ros`` as in ROS 2 (logs live there)."""
    ros_home = os.environ.get("ROS_HOME") or "~/.ros"
    return Path(ros_home).expanduser() / "langscene" / "scenes"


class SceneStore:
    """Save and load scenes inside ``root`` only.

    root: the scene directory (``node.scene_dir``; '' for :func:`default_scene_dir`), created (mode
    0700) when missing. min_free_bytes: a save is refused when the free space on root's file system,
    less the scene's size, would fall below it.
    """

    def __init__(self, root: str | Path, min_free_bytes: int) -> None:
        root = Path(root).expanduser() if str(root) else default_scene_dir()
        if not root.is_absolute():
            raise SceneFileError(f"the scene directory must be an absolute path, got {str(root)!r}")
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise SceneFileError(f"cannot create the scene directory {root}: {exc}") from exc
        self.root = root.resolve()
        if not self.root.is_dir():
            raise SceneFileError(f"the scene directory {root} is not a directory")
        self.min_free_bytes = int(min_free_bytes)

    def resolve(self, name_or_path: str | Path) -> Path:
        """The absolute PLY path a request names (``.ply`` added when missing): a name relative to the
        root (``kitchen``, ``lab/kitchen.ply``) or an absolute path inside it. Symlinks are followed
        before the check, for the PLY and its sidecar. SceneLocationError when it resolves outside."""
        text = str(name_or_path)
        # control characters (NUL, a newline, an escape...) make no file name a robot operator means
        if not text.strip() or control_character(text) is not None:
            raise SceneLocationError(f"scene name {text!r} is empty or holds a control character")
        requested = ply_path_of(text if Path(text).is_absolute() else self.root / text)
        if requested.name.startswith("."):
            raise SceneLocationError(f"scene name {requested.name!r} starts with a dot (hidden and temporary files)")
        resolved = requested.resolve()
        for path in (resolved, sidecar_path(resolved).resolve()):
            if not path.is_relative_to(self.root) or path == self.root:
                raise SceneLocationError(
                    f"{text!r} resolves to {path}, outside the scene directory {self.root} (node.scene_dir)"
                )
        return resolved

    def save(self, scene: Scene, name_or_path: str | Path) -> Path:
        """Write ``scene`` at :meth:`resolve` (name_or_path); returns the absolute PLY path. Raises
        SceneLocationError (outside the root) or SceneFileError (no room, not our file, write failed)."""
        path = self.resolve(name_or_path)
        needed = scene_file_bytes(scene)
        try:
            free = shutil.disk_usage(path.parent if path.parent.is_dir() else self.root).free
        except OSError as exc:
            raise SceneFileError(f"cannot read the free space of {path.parent}: {exc}") from exc
        if free - needed < self.min_free_bytes:
            raise SceneFileError(
                f"not saving {path}: {free / 2**20:.0f} MB free, the scene needs {needed / 2**20:.1f} MB and "
                f"{self.min_free_bytes / 2**20:.0f} MB must stay free (limits.scene_min_free_mb)"
            )
        with _SAVE_LOCK:
            return save_scene(scene, path)

    def load(self, name_or_path: str | Path, lqc: LQC, lqc_name: str) -> tuple[Scene, Path]:
        """Read the scene at :meth:`resolve` (name_or_path); returns it and its absolute PLY path.
        Raises SceneLocationError or SceneFileError (:func:`load_scene`)."""
        path = self.resolve(name_or_path)
        return load_scene(path, lqc, lqc_name), path


def scene_file_bytes(scene: Scene) -> int:
    """About the bytes a save of ``scene`` writes: its float32 PLY body (the header and sidecar are a
    few KB; the pending copy replaces the old PLY, so a save briefly needs the old and the new)."""
    gaussians = scene.gaussians
    return 4 * len(gaussians) * len(property_names(gaussians.sh_degree, gaussians.levels)) + 65536
