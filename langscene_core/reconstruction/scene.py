"""The immutable scene snapshot queries read, and its save / load.

A finished reconstruction (or a loaded file) becomes one :class:`Scene`; the node swaps snapshots
atomically, so a query never sees a half-built scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langscene_core.errors import SceneFileError
from langscene_core.field.gaussians import Gaussians
from langscene_core.field.ply import load_ply, read_sidecar, save_ply
from langscene_core.language.lqc import LQC

FORMAT = "langscene-scene-1"  # marks a PLY sidecar's metadata as a whole scene


@dataclass(frozen=True, eq=False)
class Scene:
    """A language-embedded Gaussian scene, scene frame ``frame_id``.

    gaussians: the trained field (CPU). means: [N, 3] float32; colors: [N, 3] float32 0..1;
    normals: [N, 3] float32 unit (sign arbitrary); codes: [N, L] int64 LQC code of each Gaussian's
    latent per mask level. info: provenance (models, keyframes, notes), JSON-serialisable.
    """

    gaussians: Gaussians
    means: np.ndarray
    colors: np.ndarray
    normals: np.ndarray
    codes: np.ndarray
    frame_id: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])


def build_scene(gaussians: Gaussians, lqc: LQC, frame_id: str, info: dict[str, Any]) -> Scene:
    """Snapshot a trained field: numpy views of the Gaussians and their LQC codes per level."""
    gaussians = gaussians.cpu().eval()
    with torch.no_grad():
        latents = gaussians.latents.detach()  # [N, L, 3]
        n, levels, dim = latents.shape
        codes = lqc.code_of(latents.reshape(-1, dim).to(lqc.codebook.device)).reshape(n, levels).cpu().numpy()
        return Scene(
            gaussians=gaussians,
            means=gaussians.means.detach().numpy().astype(np.float32),
            colors=gaussians.base_colors().detach().numpy().astype(np.float32),
            normals=gaussians.surface_normals().detach().numpy().astype(np.float32),
            codes=codes.astype(np.int64),
            frame_id=frame_id,
            info=dict(info),
        )


def save_scene(scene: Scene, path: str | Path) -> Path:
    """Write ``scene`` as ``path`` (a 3DGS-layout PLY with the language latents, ``.ply`` added when
    missing) and its JSON sidecar (frame, provenance), as one crash-consistent pair that never replaces
    a file langscene did not write (:func:`langscene_core.field.ply.save_ply`). Returns the PLY path.
    Unconfined: a service or CLI saves through :class:`~langscene_core.reconstruction.store.SceneStore`."""
    path = ply_path_of(path)
    if not path.parent.is_dir():
        raise SceneFileError(f"directory {path.parent} does not exist")
    try:
        return save_ply(
            scene.gaussians, path, metadata={"scene": FORMAT, "frame_id": scene.frame_id, "info": scene.info}
        )
    except (ValueError, OSError) as exc:
        raise SceneFileError(f"cannot write {path}: {exc}") from exc


def ply_path_of(path: str | Path) -> Path:
    """The PLY a scene path names: ``~`` expanded, ``.ply`` added when missing."""
    path = Path(path).expanduser()
    return path if path.suffix == ".ply" else path.with_name(path.name + ".ply")


def load_scene(path: str | Path, lqc: LQC, lqc_name: str) -> Scene:
    """Read a PLY written by :func:`save_scene`. Codes are recomputed with ``lqc`` (the node's, named
    ``lqc_name`` as in ``models.lqc.checkpoint``), which must be the one the scene was built with:
    latents of another compressor mean nothing to it. Any file that is missing, truncated, corrupt,
    hand-edited or of another format raises SceneFileError (and nothing else) naming the problem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SceneFileError(f"no such file: {path}")
    try:
        metadata = read_sidecar(path)["metadata"]
    except ValueError as exc:
        raise SceneFileError(str(exc)) from exc
    if metadata.get("scene") != FORMAT:
        raise SceneFileError(f"{path} holds Gaussians but not a langscene scene (no scene metadata)")
    info, frame_id = metadata.get("info", {}), metadata.get("frame_id")
    if not isinstance(info, dict) or not isinstance(frame_id, str) or not frame_id:
        raise SceneFileError(f"{path}: the sidecar's scene metadata needs a frame_id string and an info mapping")
    built_with = info.get("lqc")
    if built_with is not None and built_with != lqc_name:
        raise SceneFileError(f"scene was built with LQC {built_with!r}, this node uses {lqc_name!r}")
    try:
        gaussians = load_ply(path)
    except ValueError as exc:
        raise SceneFileError(str(exc)) from exc
    if len(gaussians) == 0:
        raise SceneFileError(f"{path} holds no Gaussians")
    if gaussians.latents.shape[2] != lqc.codebook.shape[1]:
        raise SceneFileError(
            f"{path}: latents of size {gaussians.latents.shape[2]}, the LQC's codes have {lqc.codebook.shape[1]}"
        )
    return build_scene(gaussians, lqc, frame_id, info)
