"""The project's one exception family: every error langscene raises on purpose for a person to read.

Catch :class:`LangsceneError` at a boundary (a ROS service handler, a CLI command) to report the message
and carry on; anything else that escapes is a bug. Each subclass also derives from the builtin type its
callers caught before the family existed (``ValueError``, ``FileNotFoundError``, ``RuntimeError``), so
``except ValueError`` around a config load or a spec parse still works.

Importable from every package of the core (DESIGN.md 1b); it imports nothing of the project.
"""

from __future__ import annotations

import unicodedata


class LangsceneError(Exception):
    """Base of every error langscene raises for a person to read; the message says what and why."""


class ConfigError(LangsceneError, ValueError):
    """A settings file or dict does not match the dataclasses; the message names the key."""


class SpecError(LangsceneError, ValueError):
    """A scene spec does not match the contract; the message starts with the offending key."""


class SceneFileError(LangsceneError, ValueError):
    """A scene file that cannot be written or read; the message says why."""


class ModelNotFoundError(LangsceneError, FileNotFoundError):
    """No model where a setting points (a missing file or directory, an unknown ``bundled:NAME``, a
    pretrained tag that is not in the local cache); the message names the setting's value."""


class ModelError(LangsceneError, ValueError):
    """A setting names something that is not a usable model: an unknown architecture or tag, a file of
    another format, models whose sizes do not fit together; the message names it."""


class ReconstructionError(LangsceneError, RuntimeError):
    """The keyframes cannot make a scene (too few, no depth...); the message says why."""


class PoseRecoveryError(LangsceneError, RuntimeError):
    """SfM could not register the frames well enough; callers fall back to the keyframes alone."""


class RequestError(LangsceneError, ValueError):
    """A request that asks for something out of bounds or malformed: the caller's mistake (BAD_REQUEST)."""


class NotReadyError(LangsceneError, RuntimeError):
    """The request needs something the engine does not have yet (models, a scene); the message says what."""


class BusyError(LangsceneError, RuntimeError):
    """A reconstruction is already running."""


class TransformError(LangsceneError, LookupError):
    """A transform that cannot be stored or looked up; ``reason`` names the kind, the message the frames."""

    reason = "transform"


def control_character(text: str) -> str | None:
    """The first control character in a person's ``text`` (Unicode category Cc: NUL, a newline, an escape;
    or Cs, a lone surrogate), else None: what a prompt or a scene name may not hold."""
    return next((c for c in text if unicodedata.category(c) in ("Cc", "Cs")), None)
