"""The models bundled with langscene (one directory each; their model card is ``README.md`` here) and the
one resolver of ``bundled:NAME`` settings (``models.clip.weights``, ``models.lqc.checkpoint``,
``models.trimap.path``).

Importable from every package of the core (DESIGN.md 1b); it imports nothing of the project but its
errors.
"""

from __future__ import annotations

from pathlib import Path

from langscene_core.errors import ModelNotFoundError

ASSETS_DIR = Path(__file__).resolve().parent
BUNDLED_PREFIX = "bundled:"


def bundled_models() -> list[str]:
    """Names of the bundled models: the directories under :data:`ASSETS_DIR`, sorted."""
    return sorted(p.name for p in ASSETS_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def bundled_path(name: str) -> Path:
    """Directory of the bundled model ``name`` (``bundled:NAME`` without the prefix).

    Raises ModelNotFoundError naming the available models when there is no such model (a name with a
    path separator or a leading dot never is one)."""
    if name not in bundled_models():
        raise ModelNotFoundError(
            f"no bundled model {BUNDLED_PREFIX}{name}: the bundled models are "
            f"{', '.join(BUNDLED_PREFIX + n for n in bundled_models()) or 'none'} (in {ASSETS_DIR})"
        )
    return ASSETS_DIR / name


def resolve(spec: str | Path) -> Path:
    """A model setting as a local path: ``bundled:NAME`` -> its directory (:func:`bundled_path`), anything
    else -> the value with ``~`` expanded (a directory, a file, or a name that is no path at all, such as
    a pretrained tag: the caller decides what it means when nothing is there)."""
    spec = str(spec)
    if spec.startswith(BUNDLED_PREFIX):
        return bundled_path(spec[len(BUNDLED_PREFIX) :])
    return Path(spec).expanduser()
