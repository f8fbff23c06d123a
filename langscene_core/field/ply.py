"""Save / load Gaussians as a 3DGS-compatible binary PLY plus a JSON sidecar.

The PLY holds one float32 vertex property per value, named as the original 3D Gaussian Splatting
release does (viewers and open3d's Gaussian-splat reader understand them):
x, y, z, nx, ny, nz (the Gaussian's normal: its shortest axis), f_dc_0..2, f_rest_* (higher SH bands,
channel-major as in 3DGS), opacity (logit), scale_0..2 (log), rot_0..3 (wxyz), followed by the
language latents lang_<level>_<c> (level s, m, l; c = 0..2). The sidecar ``<name>.json`` records the
format version, SH degree, levels, Gaussian count and caller metadata. Both files are written to a
temporary file in the same folder and renamed into place, so a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langscene_core.field.gaussians import LEVELS, Gaussians

FORMAT = "langscene-gaussians"
VERSION = 1


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar next to a PLY: ``scene.ply`` -> ``scene.json``."""
    return Path(path).with_suffix(".json")


def property_names(sh_degree: int, levels: int) -> list[str]:
    """Vertex property names in file order."""
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    names += [f"lang_{_level_name(level)}_{c}" for level in range(levels) for c in range(3)]
    return names


def _level_name(level: int) -> str:
    return LEVELS[level] if level < len(LEVELS) else str(level)


def save_ply(gaussians: Gaussians, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (PLY) and its JSON sidecar atomically; returns the PLY path.

    metadata: JSON-serialisable extra information (e.g. scene frame, training settings).
    """
    path = Path(path)
    state = gaussians.state()
    n = len(gaussians)
    with torch.no_grad():
        normals = gaussians.surface_normals().detach().cpu()
    columns = [
        state["means"],
        normals,
        state["sh0"][:, 0],
        state["shN"].transpose(1, 2).reshape(n, -1),
        state["opacities"][:, None],
        state["scales"],
        state["quats"],
        state["latents"].reshape(n, -1),
    ]
    data = torch.cat(columns, dim=1).numpy().astype("<f4")
    names = property_names(gaussians.sh_degree, gaussians.levels)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    payload = ("\n".join(header) + "\n").encode("ascii") + np.ascontiguousarray(data).tobytes()
    sidecar = {
        "format": FORMAT,
        "version": VERSION,
        "sh_degree": gaussians.sh_degree,
        "levels": [_level_name(level) for level in range(gaussians.levels)],
        "count": n,
        "metadata": metadata or {},
    }
    _atomic_write(path, payload)
    _atomic_write(sidecar_path(path), json.dumps(sidecar, indent=2).encode("utf-8"))
    return path


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a PLY written by ``save_ply`` (its caller metadata is under "metadata")."""
    path = Path(path)
    try:
        sidecar = json.loads(sidecar_path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the sidecar {sidecar_path(path)} of {path}: {exc}") from exc
    if sidecar.get("format") != FORMAT or sidecar.get("version") != VERSION:
        raise ValueError(f"{sidecar_path(path)} is not a {FORMAT} v{VERSION} sidecar")
    return sidecar


def load_ply(path: str | Path) -> Gaussians:
    """Read Gaussians (on the CPU) written by ``save_ply``; ValueError names what does not match."""
    path = Path(path)
    sidecar = read_sidecar(path)
    sh_degree, levels = int(sidecar["sh_degree"]), len(sidecar["levels"])
    raw = path.read_bytes()
    marker = b"end_header\n"
    end = raw.find(marker)
    if not raw.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path} is not a PLY file")
    header = raw[:end].decode("ascii").splitlines()
    names = [line.split()[-1] for line in header if line.startswith("property")]
    expected = property_names(sh_degree, levels)
    if "format binary_little_endian 1.0" not in header or names != expected:
        raise ValueError(f"{path}: unexpected PLY layout (need binary little-endian float properties {expected})")
    count = next(int(line.split()[-1]) for line in header if line.startswith("element vertex"))
    if count != sidecar["count"]:
        raise ValueError(f"{path} holds {count} Gaussians but its sidecar says {sidecar['count']}")
    body = raw[end + len(marker) :]
    if len(body) != count * len(names) * 4:
        raise ValueError(f"{path} is truncated: {len(body)} bytes for {count} x {len(names)} floats")
    data = torch.from_numpy(np.frombuffer(body, dtype="<f4").reshape(count, len(names)).astype(np.float32))
    col = {name: i for i, name in enumerate(names)}

    def block(first: str, width: int) -> torch.Tensor:
        return data[:, col[first] : col[first] + width]

    n_rest = (sh_degree + 1) ** 2 - 1
    params = {
        "means": block("x", 3),
        "sh0": block("f_dc_0", 3)[:, None, :],
        "shN": (block("f_rest_0", 3 * n_rest) if n_rest else data[:, :0]).reshape(count, 3, n_rest).transpose(1, 2),
        "opacities": data[:, col["opacity"]],
        "scales": block("scale_0", 3),
        "quats": block("rot_0", 4),
        "latents": block(f"lang_{_level_name(0)}_0", 3 * levels).reshape(count, levels, 3),
    }
    return Gaussians(params, sh_degree)


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; scene files are meant to be shared
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
