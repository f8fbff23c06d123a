"""Save / load Gaussians as a 3DGS-compatible binary PLY plus a JSON sidecar.

The PLY holds one float32 vertex property per value, named as the original 3D Gaussian Splatting
release does (viewers and open3d's Gaussian-splat reader understand them):
x, y, z, nx, ny, nz (the Gaussian's normal: its shortest axis), f_dc_0..2, f_rest_* (higher SH bands,
channel-major as in 3DGS), opacity (logit), scale_0..2 (log), rot_0..3 (wxyz), followed by the
language latents lang_<level>_<c> (level s, m, l; c = 0..2). The sidecar ``<name>.json`` records the
format version, SH degree, levels, Gaussian count, caller metadata and the save's generation id, which
the PLY header repeats in a comment line (``comment langscene-gaussians generation <id>``); the comment
also marks the PLY as written by langscene (:func:`written_by_langscene`).

Crash consistency (a save interrupted at any point leaves the previous pair or the new one, never a
mix): the sidecar is the commit record. A save writes the new PLY to a pending file
``.<name>.ply.<generation>.pending`` beside the target (fsynced), then replaces the sidecar atomically
(temporary file, fsync, rename: the commit), then renames the pending PLY over ``<name>.ply`` and
deletes the pending and temporary files earlier interrupted saves of that scene left. A reader follows the sidecar: when the PLY's
generation differs from the sidecar's (a crash between the two renames), it reads the pending file of
the sidecar's generation instead. One writer per scene path at a time (the node's file services run
one after the other). Version 1 sidecars (no generation) still load, without the check.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langscene_core.field.gaussians import LEVELS, Gaussians

FORMAT = "langscene-gaussians"
VERSION = 2  # 2: generation id in sidecar and PLY header (crash-consistent pair); 1: no generation
READABLE_VERSIONS = (1, 2)
MAX_HEADER_BYTES = 1 << 16  # a langscene PLY header is a few KB; more is not one of ours


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar next to a PLY: ``scene.ply`` -> ``scene.json``."""
    return Path(path).with_suffix(".json")


def pending_path(path: str | Path, generation: str) -> Path:
    """Where the PLY of save ``generation`` waits until the sidecar naming it is in place."""
    path = Path(path)
    return path.with_name(f".{path.name}.{generation}.pending")


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
    """Write ``path`` (PLY) and its JSON sidecar as one crash-consistent pair (module docstring);
    returns the PLY path. An existing PLY or sidecar at the target that langscene did not write is
    never replaced (ValueError).

    metadata: JSON-serialisable extra information (e.g. scene frame, training settings).
    """
    path = Path(path)
    for existing in (path, sidecar_path(path)):
        if (existing.exists() or existing.is_symlink()) and not written_by_langscene(existing):
            raise ValueError(f"{existing} exists and was not written by langscene: not replacing it")
    generation = uuid.uuid4().hex
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
    header = ["ply", "format binary_little_endian 1.0", f"comment {FORMAT} generation {generation}"]
    header += [f"element vertex {n}"] + [f"property float {name}" for name in names] + ["end_header"]
    payload = ("\n".join(header) + "\n").encode("ascii") + np.ascontiguousarray(data).tobytes()
    sidecar = {
        "format": FORMAT,
        "version": VERSION,
        "generation": generation,
        "sh_degree": gaussians.sh_degree,
        "levels": [_level_name(level) for level in range(gaussians.levels)],
        "count": n,
        "metadata": metadata or {},
    }
    text = json.dumps(sidecar, indent=2).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    pending = pending_path(path, generation)
    try:
        with open(pending, "xb") as handle:  # a new name: not yet visible as the scene
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:  # e.g. the disk filled up: nothing was committed
        pending.unlink(missing_ok=True)
        raise
    os.chmod(pending, 0o644)
    _fsync_directory(path.parent)  # the pending file's name is durable before the commit names it
    _atomic_write(sidecar_path(path), text)  # the commit: readers now follow the new generation
    os.replace(pending, path)
    _fsync_directory(path.parent)
    leftovers = ((f".{path.name}.", ".pending"), (f".{sidecar_path(path).name}.", ".tmp"))
    for stale in path.parent.iterdir():  # what interrupted saves of this scene left behind
        if any(stale.name.startswith(start) and stale.name.endswith(end) for start, end in leftovers):
            stale.unlink(missing_ok=True)
    return path


def written_by_langscene(path: str | Path) -> bool:
    """Whether the file at ``path`` is a PLY or sidecar langscene wrote (and may replace): a sidecar
    with our format marker, a PLY whose header carries our comment line, or (version 1, before the
    comment) a PLY with our language properties beside a sidecar of ours. Never raises."""
    path = Path(path)
    try:
        if not path.is_file() or path.is_symlink():
            return False
        if path.suffix == ".json":
            return _is_sidecar(path)
        with open(path, "rb") as handle:
            head = handle.read(MAX_HEADER_BYTES)
        end = head.find(b"end_header\n")
        if not head.startswith(b"ply\n") or end < 0:
            return False
        lines = head[:end].decode("ascii", errors="replace").splitlines()
        if any(line.startswith(f"comment {FORMAT} ") for line in lines):
            return True
        has_latents = any(line.startswith("property float lang_") for line in lines)
        return has_latents and _is_sidecar(sidecar_path(path))
    except OSError:
        return False


def _is_sidecar(path: Path) -> bool:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and document.get("format") == FORMAT


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a PLY written by ``save_ply``, checked field by field (its caller metadata
    is under "metadata"). ValueError names the file and what is wrong."""
    path = Path(path)
    side = sidecar_path(path)
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"cannot read the sidecar {side} of {path}: {exc}") from exc
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise ValueError(f"{side} is not a {FORMAT} sidecar")
    version = sidecar.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ValueError(f"{side}: version {version!r} is not one of {READABLE_VERSIONS}")
    checks = {
        "sh_degree": lambda v: _is_int(v) and 0 <= v <= 4,
        "levels": lambda v: isinstance(v, list) and 1 <= len(v) <= 16 and all(isinstance(x, str) for x in v),
        "count": lambda v: _is_int(v) and v >= 0,
        "metadata": lambda v: isinstance(v, dict),
    }
    if version >= 2:
        checks["generation"] = lambda v: isinstance(v, str) and v.isalnum() and 0 < len(v) <= 64
    for key, valid in checks.items():
        if key not in sidecar:
            raise ValueError(f"{side}: missing '{key}'")
        if not valid(sidecar[key]):
            raise ValueError(f"{side}: invalid '{key}': {sidecar[key]!r}")
    return sidecar


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_ply(path: str | Path) -> Gaussians:
    """Read Gaussians (on the CPU) written by ``save_ply``; ValueError names what does not match. When
    the PLY is of another save than the sidecar, the sidecar's pending PLY is read (module docstring)."""
    path = Path(path)
    sidecar = read_sidecar(path)
    generation = sidecar.get("generation")
    raw = _read_ply(path)
    header, body = _split_header(path, raw)
    if generation is not None and _generation_of(header) != generation:
        pending = pending_path(path, generation)
        if not pending.is_file():
            raise ValueError(
                f"{path} is of another save ({_generation_of(header)}) than its sidecar ({generation}), "
                "and that save's PLY is missing"
            )
        raw = _read_ply(pending)
        header, body = _split_header(pending, raw)
        if _generation_of(header) != generation:
            raise ValueError(f"{pending} is not the PLY of save {generation}")
    sh_degree, levels = sidecar["sh_degree"], len(sidecar["levels"])
    names = [line.split()[-1] for line in header if line.startswith("property")]
    expected = property_names(sh_degree, levels)
    if "format binary_little_endian 1.0" not in header or names != expected:
        raise ValueError(f"{path}: unexpected PLY layout (need binary little-endian float properties {expected})")
    counts = [line.split() for line in header if line.startswith("element vertex")]
    if len(counts) != 1 or len(counts[0]) != 3 or not counts[0][2].isdigit():
        raise ValueError(f"{path}: the PLY header needs one 'element vertex N' line")
    count = int(counts[0][2])
    if count != sidecar["count"]:
        raise ValueError(f"{path} holds {count} Gaussians but its sidecar says {sidecar['count']}")
    if len(body) != count * len(names) * 4:
        raise ValueError(f"{path} is truncated: {len(body)} bytes for {count} x {len(names)} floats")
    data = torch.from_numpy(np.frombuffer(body, dtype="<f4").reshape(count, len(names)).astype(np.float32))
    if not torch.isfinite(data).all():
        raise ValueError(f"{path} holds NaN or infinite values")
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


def _read_ply(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def _split_header(path: Path, raw: bytes) -> tuple[list[str], bytes]:
    """Header lines and binary body of a PLY file's bytes."""
    marker = b"end_header\n"
    end = raw.find(marker, 0, MAX_HEADER_BYTES)
    if not raw.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path} is not a PLY file")
    try:
        header = raw[:end].decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: the PLY header is not ASCII") from exc
    return header, raw[end + len(marker) :]


def _generation_of(header: list[str]) -> str | None:
    prefix = f"comment {FORMAT} generation "
    return next((line[len(prefix) :].strip() for line in header if line.startswith(prefix)), None)


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
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable (a power cut after it keeps them)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
