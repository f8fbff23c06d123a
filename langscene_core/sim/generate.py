"""Random scene specs: distinct coloured shapes placed on the table without overlaps."""

from __future__ import annotations

import itertools

import numpy as np

from langscene_core.sim.scene import overlapping_pair
from langscene_core.sim.spec import COLORS, SHAPES, CameraSpec, ObjectSpec, TableSpec, WorldSpec

PLACEMENT_FRACTION = 0.5  # objects go in the central half of the table, seen from every orbit view
SIZE_RANGE = (0.06, 0.12)  # metres
MAX_TRIES = 200  # placement attempts per object


def random_spec(
    seed: int, count: int = 4, table: TableSpec = TableSpec(), camera: CameraSpec = CameraSpec(), eval_views: int = 4
) -> WorldSpec:
    """A spec with ``count`` objects of distinct (colour, shape) names, e.g. "red mug".

    Colours exclude the table's; sizes in SIZE_RANGE; yaw uniform. Same seed, same spec. ValueError when
    ``count`` is not positive or the objects do not fit without overlaps.
    """
    if count < 1:
        raise ValueError(f"count: must be >= 1, got {count}")
    rng = np.random.default_rng(seed)
    combos = [(c, s) for c, s in itertools.product(COLORS, SHAPES) if c != table.color]
    if count > len(combos):
        raise ValueError(f"count: at most {len(combos)} distinct objects, got {count}")
    picks = rng.choice(len(combos), size=count, replace=False)
    half = PLACEMENT_FRACTION * np.asarray(table.size) / 2
    objects: list[ObjectSpec] = []
    for color, shape in (combos[i] for i in picks):
        size = float(rng.uniform(*SIZE_RANGE))
        yaw = float(rng.uniform(0.0, 360.0))
        for _ in range(MAX_TRIES):
            position = tuple(float(v) for v in rng.uniform(-half, half))
            candidate = ObjectSpec(
                name=f"{color} {shape}",
                shape=shape,
                color=color,
                size=round(size, 4),
                position=position,
                yaw=round(yaw, 2),
            )
            if overlapping_pair(objects + [candidate]) is None:
                objects.append(candidate)
                break
        else:
            raise ValueError(f"count: could not place {count} objects without overlaps (seed {seed})")
    return WorldSpec(objects=tuple(objects), seed=seed, table=table, camera=camera, eval_views=eval_views)
