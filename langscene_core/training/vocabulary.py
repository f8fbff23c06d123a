"""The world's language: subjects (colour, shape), caption templates, held-out combinations.

A *subject* is what a crop shows: an object (colour, shape), the table (colour, ``"table"``) or nothing
(background). Captions come in three groups, each a list of texts with the subject attributes they
describe: full names ("red mug", "a photo of a red mug", "gray table"), shapes ("mug", "a table") and
colours ("something red"). A caption *matches* a subject when every attribute it names is the subject's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from langscene_core.sim.spec import COLORS, SHAPES

TABLE_SHAPE = "table"
#: Shapes a subject can have: the world's object shapes, then the table.
SUBJECT_SHAPES: tuple[str, ...] = (*SHAPES, TABLE_SHAPE)
SUBJECT_COLORS: tuple[str, ...] = tuple(COLORS)
#: Colours the training tables get (the world's default is gray).
TABLE_COLORS: tuple[str, ...] = ("gray", "brown", "white", "black")

NAME_TEMPLATES = ("{color} {shape}", "a {color} {shape}", "the {color} {shape}", "a photo of a {color} {shape}")
SHAPE_TEMPLATES = ("{shape}", "a {shape}", "the {shape}", "a photo of a {shape}")
COLOR_TEMPLATES = ("something {color}", "{color}", "a {color} one")

#: Colour x shape combinations left out of training when measuring compositional generalisation (the
#: training scripts' default, and the shipped tiny-clip; ``--include-held-out`` trains on all): each
#: colour and each shape still occurs in other combinations, so retrieval of these names measures it.
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("red", "mug"),
    ("blue", "cone"),
    ("green", "torus"),
    ("yellow", "bowl"),
    ("purple", "box"),
    ("orange", "ball"),
    ("white", "cylinder"),
    ("pink", "cone"),
)


def object_name(color: str, shape: str) -> str:
    """The name a user queries, as the world writes it ("red mug")."""
    return f"{color} {shape}"


@dataclass(frozen=True)
class Captions:
    """One caption per row with the attributes it names.

    texts: T strings. color: [T] int64 index into SUBJECT_COLORS, -1 when the caption names no colour.
    shape: [T] int64 index into SUBJECT_SHAPES, -1 when it names no shape.
    """

    texts: tuple[str, ...]
    color: np.ndarray
    shape: np.ndarray

    def matches(self, color: np.ndarray, shape: np.ndarray) -> np.ndarray:
        """[B, T] bool: caption t describes subject b. color, shape: [B] int64 subject indices, -1 for
        background (no caption matches it)."""
        color, shape = np.asarray(color)[:, None], np.asarray(shape)[:, None]
        ok_color = (self.color[None] < 0) | (self.color[None] == color)
        ok_shape = (self.shape[None] < 0) | (self.shape[None] == shape)
        return ok_color & ok_shape & (shape >= 0)

    def confusable(self, color: np.ndarray, shape: np.ndarray) -> np.ndarray:
        """[B, T] bool: caption t names a colour and a shape, exactly one of which is subject b's ("red
        bowl" for a red mug, "blue mug" for a red mug): the names a query for an absent object uses.
        color, shape: [B] int64 subject indices, -1 for background (no caption is confusable with it)."""
        color, shape = np.asarray(color)[:, None], np.asarray(shape)[:, None]
        full = (self.color[None] >= 0) & (self.shape[None] >= 0)
        return full & ((self.color[None] == color) != (self.shape[None] == shape)) & (shape >= 0)


def _captions(rows: Sequence[tuple[str, int, int]]) -> Captions:
    return Captions(
        tuple(r[0] for r in rows),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.int64),
    )


def subject_combos(include_held_out: bool) -> list[tuple[str, str]]:
    """(colour, shape) of every object subject plus the training table colours; held-out combinations
    only when ``include_held_out``."""
    objects = [
        (c, s) for c, s in itertools.product(SUBJECT_COLORS, SHAPES) if include_held_out or (c, s) not in HELD_OUT
    ]
    return objects + [(c, TABLE_SHAPE) for c in TABLE_COLORS]


def name_captions(combos: Sequence[tuple[str, str]], template: str = NAME_TEMPLATES[0]) -> Captions:
    """One full-name caption per (colour, shape) combination, written with ``template``."""
    return _captions(
        [(template.format(color=c, shape=s), SUBJECT_COLORS.index(c), SUBJECT_SHAPES.index(s)) for c, s in combos]
    )


def sample_captions(rng: np.random.Generator, include_held_out: bool = False) -> tuple[Captions, Captions, Captions]:
    """(names, shapes, colours) of the training vocabulary, each caption written with a template drawn
    from ``rng``. Names cover :func:`subject_combos`, the held-out combinations only when
    ``include_held_out``."""
    names = [
        (
            NAME_TEMPLATES[rng.integers(len(NAME_TEMPLATES))].format(color=c, shape=s),
            SUBJECT_COLORS.index(c),
            SUBJECT_SHAPES.index(s),
        )
        for c, s in subject_combos(include_held_out)
    ]
    shapes = [
        (SHAPE_TEMPLATES[rng.integers(len(SHAPE_TEMPLATES))].format(shape=s), -1, i)
        for i, s in enumerate(SUBJECT_SHAPES)
    ]
    colors = [
        (COLOR_TEMPLATES[rng.integers(len(COLOR_TEMPLATES))].format(color=c), i, -1)
        for i, c in enumerate(SUBJECT_COLORS)
    ]
    return _captions(names), _captions(shapes), _captions(colors)
