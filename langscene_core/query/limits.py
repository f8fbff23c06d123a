"""Bounds on what one query request may ask for, checked before any work is done.

Any client on the ROS domain can call ``~/query_object``; without bounds one request could ask for a
prompt of megabytes, thousands of negative phrases (each a CLIP text encoding) or billions of points.
:func:`validate_query_request` refuses such a request with :class:`RequestError` (the node answers
BAD_REQUEST with its message); the values themselves come from ``limits.*`` (config.LimitsConfig).
"""

from __future__ import annotations

from collections.abc import Sequence

from langscene_core.config import LimitsConfig
from langscene_core.errors import RequestError, control_character


def validate_query_request(
    prompt: str,
    negatives: Sequence[str],
    limits: LimitsConfig,
    max_points: int = 0,
    max_grasps: int = 0,
    max_objects: int = 0,
) -> None:
    """Raise RequestError naming the first field out of bounds, else return.

    prompt: the text asked for (non-blank, at most ``limits.max_prompt_chars`` characters, no control
    characters). negatives: extra negative phrases (at most ``limits.max_negatives``, each non-blank,
    at most ``limits.max_negative_chars``, no control characters). max_points / max_grasps /
    max_objects: the request's counts, 0 meaning the node's default, else at most the limit.
    """
    _check_text("prompt", prompt, limits.max_prompt_chars, "max_prompt_chars")
    if len(negatives) > limits.max_negatives:
        raise RequestError(f"{len(negatives)} negatives; at most {limits.max_negatives} (limits.max_negatives)")
    for i, negative in enumerate(negatives):
        _check_text(f"negatives[{i}]", negative, limits.max_negative_chars, "max_negative_chars")
    for name, value, bound in (
        ("max_points", max_points, limits.max_points),
        ("max_grasps", max_grasps, limits.max_grasps),
        ("max_objects", max_objects, limits.max_objects),
    ):
        if not 0 <= value <= bound:
            raise RequestError(f"{name} {value} is not in [0, {bound}] (0: the node's default; limits.{name})")


def _check_text(name: str, text: str, max_chars: int, setting: str) -> None:
    if not isinstance(text, str):
        raise RequestError(f"{name} is not text")
    if not text.strip():
        raise RequestError(f"empty {name}")
    if len(text) > max_chars:
        raise RequestError(f"{name} has {len(text)} characters; at most {max_chars} (limits.{setting})")
    bad = control_character(text)
    if bad is not None:
        raise RequestError(f"{name} holds the control character {bad!r}")
