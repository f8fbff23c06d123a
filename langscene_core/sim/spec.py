"""Scene spec of the synthetic tabletop world (DESIGN.md section 5, a contract).

A spec is JSON::

    {"seed": 0,
     "table": {"size": [1.0, 0.7], "color": "gray"},
     "objects": [{"name": "red mug", "shape": "mug", "color": "red", "size": 0.10,
                  "position": [0.10, -0.05], "yaw": 30}],
     "camera": {"width": 160, "height": 120, "hfov_deg": 60, "trajectory": "orbit",
                "views": 24, "radius": 0.7, "elevation_deg": 35},
     "eval_views": 4}

World frame: z up, the table top is the plane z = 0 with its centre at the origin, ``position`` is the
object's footprint centre (x, y) in metres on that plane, ``yaw`` a rotation about z in degrees,
``size`` the object's largest dimension in metres. ``objects`` is required; everything else has the
defaults shown. :func:`parse_spec` raises :class:`SpecError` naming the bad key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langscene_core.errors import SpecError

SHAPES = ("box", "ball", "cylinder", "cone", "torus", "mug", "bowl")

#: Linear RGB albedo in 0..1 of every colour name a spec may use.
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.08, 0.08),
    "green": (0.10, 0.65, 0.15),
    "blue": (0.10, 0.20, 0.85),
    "yellow": (0.90, 0.85, 0.10),
    "orange": (0.95, 0.50, 0.05),
    "purple": (0.55, 0.15, 0.70),
    "white": (0.92, 0.92, 0.92),
    "black": (0.06, 0.06, 0.06),
    "gray": (0.50, 0.50, 0.50),
    "brown": (0.45, 0.28, 0.12),
    "pink": (0.95, 0.55, 0.70),
}

#: orbit: ``views`` cameras evenly on a full circle; arc: ``views`` cameras on a 120 degree arc in
#: front of the table (-y side); two_view: exactly 2 cameras 120 degrees apart, a sparse capture.
TRAJECTORIES = ("orbit", "arc", "two_view")


@dataclass(frozen=True)
class TableSpec:
    size: tuple[float, float] = (1.0, 0.7)  # metres along world x, y
    color: str = "gray"


@dataclass(frozen=True)
class ObjectSpec:
    name: str  # the text a user queries, unique in a spec
    shape: str  # one of SHAPES
    color: str  # one of COLORS
    size: float  # largest dimension, metres
    position: tuple[float, float]  # footprint centre on the table plane, metres
    yaw: float = 0.0  # degrees about world z


@dataclass(frozen=True)
class CameraSpec:
    width: int = 160
    height: int = 120
    hfov_deg: float = 60.0
    trajectory: str = "orbit"  # one of TRAJECTORIES
    views: int = 24
    radius: float = 0.7  # metres from the look-at point (table centre)
    elevation_deg: float = 35.0  # above the table plane


@dataclass(frozen=True)
class WorldSpec:
    objects: tuple[ObjectSpec, ...]
    seed: int = 0  # seeds the texture noise (and records the generator seed)
    table: TableSpec = field(default_factory=TableSpec)
    camera: CameraSpec = field(default_factory=CameraSpec)
    eval_views: int = 4  # extra labelled views off the capture trajectory

    def object_index(self, name: str) -> int:
        """Index in ``objects`` of the object called ``name``; ValueError listing the names if absent."""
        for i, obj in enumerate(self.objects):
            if obj.name == name:
                return i
        raise ValueError(f"no object named {name!r} (objects: {', '.join(o.name for o in self.objects)})")


def _check_keys(data: Any, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> Mapping:
    if not isinstance(data, Mapping):
        raise SpecError(f"{key or 'spec'}: expected an object, got {type(data).__name__}")
    prefix = f"{key}." if key else ""
    for name in data:
        if name not in allowed:
            raise SpecError(f"{prefix}{name}: unknown key (allowed: {', '.join(allowed)})")
    for name in required:
        if name not in data:
            raise SpecError(f"{prefix}{name}: missing")
    return data


def _number(
    value: Any, key: str, minimum: float | None = None, maximum: float | None = None, exclusive_min: bool = True
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{key}: expected a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
        raise SpecError(f"{key}: must be {'>' if exclusive_min else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SpecError(f"{key}: must be <= {maximum}, got {value}")
    return float(value)


def _integer(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{key}: expected an integer, got {value!r}")
    if value < minimum:
        raise SpecError(f"{key}: must be >= {minimum}, got {value}")
    return value


def _choice(value: Any, key: str, choices) -> str:
    if value not in choices:
        raise SpecError(f"{key}: unknown value {value!r} (expected one of {', '.join(choices)})")
    return value


def _pair(value: Any, key: str, positive: bool) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SpecError(f"{key}: expected a list of 2 numbers, got {value!r}")
    return tuple(_number(v, f"{key}[{i}]", 0.0 if positive else None) for i, v in enumerate(value))


def _parse_table(data: Any) -> TableSpec:
    data = _check_keys(data, "table", ("size", "color"))
    default = TableSpec()
    return TableSpec(
        size=_pair(data.get("size", default.size), "table.size", positive=True),
        color=_choice(data.get("color", default.color), "table.color", COLORS),
    )


def _parse_object(data: Any, key: str, table: TableSpec) -> ObjectSpec:
    data = _check_keys(
        data,
        key,
        ("name", "shape", "color", "size", "position", "yaw"),
        required=("name", "shape", "color", "size", "position"),
    )
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"{key}.name: expected a non-empty string, got {name!r}")
    position = _pair(data["position"], f"{key}.position", positive=False)
    for axis, (coord, extent) in enumerate(zip(position, table.size)):
        if abs(coord) > extent / 2:
            raise SpecError(f"{key}.position[{axis}]: {coord} is off the table (|value| <= {extent / 2})")
    return ObjectSpec(
        name=name,
        shape=_choice(data["shape"], f"{key}.shape", SHAPES),
        color=_choice(data["color"], f"{key}.color", COLORS),
        size=_number(data["size"], f"{key}.size", 0.0, maximum=0.5),
        position=position,
        yaw=_number(data.get("yaw", 0.0), f"{key}.yaw"),
    )


def _parse_camera(data: Any) -> CameraSpec:
    data = _check_keys(data, "camera", tuple(CameraSpec.__dataclass_fields__))
    d = CameraSpec()
    trajectory = _choice(data.get("trajectory", d.trajectory), "camera.trajectory", TRAJECTORIES)
    views = _integer(data.get("views", 2 if trajectory == "two_view" else d.views), "camera.views", 1)
    if trajectory == "two_view" and views != 2:
        raise SpecError(f"camera.views: trajectory 'two_view' captures exactly 2 views, got {views}")
    return CameraSpec(
        width=_integer(data.get("width", d.width), "camera.width", 8),
        height=_integer(data.get("height", d.height), "camera.height", 8),
        hfov_deg=_number(data.get("hfov_deg", d.hfov_deg), "camera.hfov_deg", 1.0, 170.0),
        trajectory=trajectory,
        views=views,
        radius=_number(data.get("radius", d.radius), "camera.radius", 0.0),
        elevation_deg=_number(data.get("elevation_deg", d.elevation_deg), "camera.elevation_deg", 0.0, 89.0),
    )


def parse_spec(data: Any) -> WorldSpec:
    """Validate a decoded JSON spec and build a :class:`WorldSpec`; SpecError names the bad key."""
    data = _check_keys(data, "", ("seed", "table", "objects", "camera", "eval_views"), required=("objects",))
    table = _parse_table(data.get("table", {}))
    if not isinstance(data["objects"], list) or not data["objects"]:
        raise SpecError(f"objects: expected a non-empty list, got {data['objects']!r}")
    objects = tuple(_parse_object(o, f"objects[{i}]", table) for i, o in enumerate(data["objects"]))
    seen: dict[str, int] = {}
    for i, obj in enumerate(objects):
        if obj.name in seen:
            raise SpecError(f"objects[{i}].name: {obj.name!r} repeats objects[{seen[obj.name]}].name")
        seen[obj.name] = i
    return WorldSpec(
        objects=objects,
        seed=_integer(data.get("seed", 0), "seed", 0),
        table=table,
        camera=_parse_camera(data.get("camera", {})),
        eval_views=_integer(data.get("eval_views", 4), "eval_views", 0),
    )


def load_spec(path: str | Path) -> WorldSpec:
    """Read and validate a spec JSON file; SpecError for unreadable JSON or a bad key."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from exc
    return parse_spec(data)


def spec_to_dict(spec: WorldSpec) -> dict[str, Any]:
    """The JSON form of ``spec`` (``parse_spec(spec_to_dict(s)) == s``)."""
    return {
        "seed": spec.seed,
        "table": {"size": list(spec.table.size), "color": spec.table.color},
        "objects": [
            {
                "name": o.name,
                "shape": o.shape,
                "color": o.color,
                "size": o.size,
                "position": list(o.position),
                "yaw": o.yaw,
            }
            for o in spec.objects
        ],
        "camera": dict(spec.camera.__dict__),
        "eval_views": spec.eval_views,
    }
