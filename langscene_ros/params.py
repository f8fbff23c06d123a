"""The node's ROS parameters: one per setting of ``langscene_core.config``, read back typed.

The one place that translates between ROS parameters and the core's :class:`LangsceneConfig` (as
nvblox_ros's ``mapper_initialization`` does): each leaf setting is declared under its dotted name
(``field.geometry_steps``) with a ``ParameterDescriptor`` built from the dataclass field: its
description, its Literal choices or range in ``additional_constraints``, a ``FloatingPointRange`` /
``IntegerRange`` for a ranged number, and ``read_only`` unless its section may change while the node
runs. Values come from the parameter file (``--params-file``) or ``-p`` overrides; the core's loader
then checks them all (types, choices, ranges) and names the key of a bad one.
"""

from __future__ import annotations

import math

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from langscene_core.config import (
    ConfigError,
    LangsceneConfig,
    SettingInfo,
    describe_settings,
    flatten,
    from_dict,
    to_dict,
    unflatten,
)

# Sections whose parameters may be set while the node runs (applied to the next query by the node's
# set-parameters callback, :func:`with_parameters`). The others (node, models, keyframe, densify, field) are read once at start and declared read-only, so a
# `ros2 param set` on them is refused instead of silently ignored.
LIVE_SECTIONS = ("query", "grasp")

INT64_MAX = 2**63 - 1


def descriptor(info: SettingInfo) -> ParameterDescriptor:
    """The ParameterDescriptor of one setting (the parameter's type is set by ``declare_parameters``
    from the default value). ROS ranges are closed: a ``> 0`` setting gets ``[0, inf]`` here and its
    open bound in ``additional_constraints``, which the loader enforces."""
    described = ParameterDescriptor(
        description=info.help,
        additional_constraints=info.describe_limits(),
        read_only=info.name.split(".")[0] not in LIVE_SECTIONS,
    )
    if info.bounds is not None and not isinstance(info.default, tuple):  # ROS ranges apply to scalars only
        lo, hi = info.bounds
        if isinstance(info.default, int) and not isinstance(info.default, bool):
            described.integer_range = [
                IntegerRange(from_value=int(lo), to_value=INT64_MAX if hi == math.inf else int(hi), step=1)
            ]
        else:
            described.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return described


def declare_and_read(node: Node) -> LangsceneConfig:
    """Declare every setting as a parameter of ``node`` and return the values as a LangsceneConfig.

    Raises ConfigError ("bad parameter: <key>: ...") on a value of the wrong type, outside its range
    or its choices, and on an override in a settings section that names no setting (a removed or
    misspelt key in a parameter file, which ROS would otherwise ignore).
    """
    infos = describe_settings()
    defaults = flatten(to_dict(LangsceneConfig()))
    try:
        node.declare_parameters("", [(name, defaults[name], descriptor(info)) for name, info in infos.items()])
    except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
        raise ConfigError(f"bad parameter: {exc}") from exc
    values = {name: node.get_parameter(name).value for name in infos}
    # rclpy offers no public view of a node's overrides; undeclared ones in our sections are typos
    sections = {name.split(".")[0] for name in infos}
    overrides = getattr(node, "_parameter_overrides", {})
    values.update(
        {name: p.value for name, p in overrides.items() if name not in infos and name.split(".")[0] in sections}
    )
    try:
        return from_dict(LangsceneConfig, unflatten(values))
    except ConfigError as exc:
        raise ConfigError(f"bad parameter: {exc}") from exc


def with_parameters(config: LangsceneConfig, parameters) -> LangsceneConfig:
    """``config`` with ``parameters`` (rclpy Parameters, as a set-parameters callback gets them) applied
    and checked as at start. Raises ConfigError naming a bad value, a name that is no setting, or a
    setting outside :data:`LIVE_SECTIONS` (read-only while the node runs)."""
    values = flatten(to_dict(config))
    for parameter in parameters:
        if parameter.name not in values:
            raise ConfigError(f"{parameter.name}: not a langscene setting")
        if parameter.name.split(".")[0] not in LIVE_SECTIONS:
            raise ConfigError(f"{parameter.name} is read-only while the node runs (only {', '.join(LIVE_SECTIONS)}.*)")
        values[parameter.name] = parameter.value
    return from_dict(LangsceneConfig, unflatten(values))
