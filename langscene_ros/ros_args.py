"""The node's ``--ros-args`` read without a ROS context: remaps, parameters, parameter files.

``langscene ingest`` reads a bag with no DDS at all, yet must take the node's inputs under the names,
remaps and parameters the node would use. rclpy resolves remaps only for a created node (a DDS
participant), so the subset of rcl's argument rules a launch file passes to this node is applied here:

- ``-r/--remap [NODE:]FROM:=TO`` (a rule with another node's name is skipped), ``__ns:=/NS`` and
  ``__node:=NAME`` (the namespace and name the node's private and relative names expand in);
- ``-p/--param [NODE:]NAME:=VALUE`` (VALUE read as YAML, as rcl does);
- ``--params-file FILE`` (the node's section ``langscene``, ``/NS/langscene`` or ``/**``; later files
  and ``-p`` win).

Names expand as rcl expands them: ``name`` -> ``/NS/name``, ``~/name`` -> ``/NS/NODE/name``; a rule
matches when its expanded FROM equals the expanded name. Any other argument raises ValueError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from langscene_core.config import (
    ConfigError,
    LangsceneConfig,
    describe_settings,
    flatten,
    from_dict,
    unflatten,
)
from langscene_ros import interface as api


@dataclass(frozen=True)
class RosArgs:
    """remaps: (FROM, TO) rules of this node in order; params: ``-p`` values by name;
    params_files: ``--params-file`` paths in order; namespace ``/`` or ``/a/b``; node: the node's name."""

    remaps: tuple[tuple[str, str], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    params_files: tuple[Path, ...] = ()
    namespace: str = "/"
    node: str = api.NODE_NAME

    def expand(self, name: str) -> str:
        """A topic name as rcl expands it in this node's namespace (absolute names stay)."""
        if name.startswith("/"):
            return name
        base = self.namespace.rstrip("/")
        if name == "~" or name.startswith("~/"):
            return f"{base}/{self.node}{name[1:]}"
        return f"{base}/{name}"

    def resolve(self, name: str) -> str:
        """The fully qualified name of topic ``name`` after the first matching remap rule."""
        expanded = self.expand(name)
        for source, target in self.remaps:
            if self.expand(source) == expanded:
                return self.expand(target)
        return expanded


def _split_rule(text: str, flag: str) -> tuple[str | None, str, str]:
    """``[NODE:]NAME:=VALUE`` -> (NODE or None, NAME, VALUE)."""
    if ":=" not in text:
        raise ValueError(f"{flag} {text!r} is not NAME:=VALUE")
    left, value = text.split(":=", 1)
    node, _, name = left.rpartition(":") if ":" in left else (None, "", left)
    if not name:
        raise ValueError(f"{flag} {text!r} has an empty name")
    return node or None, name, value


def parse_ros_args(args: Sequence[str], node: str = api.NODE_NAME) -> RosArgs:
    """The arguments after ``--ros-args`` (see the module docstring). Raises ValueError naming an
    unsupported or malformed argument."""
    remaps: list[tuple[str, str]] = []
    params: dict[str, Any] = {}
    files: list[Path] = []
    namespace, name = "/", node
    items = list(args)
    i = 0
    while i < len(items):
        flag = items[i]
        if flag in ("-r", "--remap", "-p", "--param", "--params-file"):
            if i + 1 >= len(items):
                raise ValueError(f"{flag} needs a value")
            value = items[i + 1]
            i += 2
            if flag == "--params-file":
                files.append(Path(value))
                continue
            target, key, text = _split_rule(value, flag)
            if target is not None and target != node:
                continue  # a rule for another node
            if flag in ("-p", "--param"):
                params[key] = yaml.safe_load(text)
            elif key == "__ns":
                namespace = "/" + text.strip("/")
            elif key == "__node":
                name = text
            else:
                remaps.append((key, text))
        elif flag == "--":
            i += 1
        else:
            raise ValueError(f"unsupported ROS argument {flag!r} (supported: -r, -p, --params-file)")
    return RosArgs(tuple(remaps), params, tuple(files), namespace, name)


def _file_parameters(path: Path, ros: RosArgs) -> dict[str, Any]:
    """The flat ``ros__parameters`` of the node's sections in a parameter file (``/**`` first)."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read parameter file {path}: {exc}") from exc
    if not isinstance(document, Mapping):
        raise ConfigError(f"parameter file {path} is not a mapping of node names")
    full = f"{ros.namespace.rstrip('/')}/{ros.node}"
    values: dict[str, Any] = {}
    for key in ("/**", ros.node, full, full.lstrip("/")):
        section = document.get(key)
        if isinstance(section, Mapping) and isinstance(section.get("ros__parameters"), Mapping):
            values.update(flatten(section["ros__parameters"]))
    return values


def config_from_ros_args(ros: RosArgs) -> LangsceneConfig:
    """The node's configuration as ``params.declare_and_read`` builds it: the defaults, then each
    parameter file, then the ``-p`` values; names outside the settings' sections (``use_sim_time``)
    are not settings and are left out. Raises ConfigError naming a bad file, key or value."""
    sections = {name.split(".")[0] for name in describe_settings()}
    values: dict[str, Any] = {}
    for path in ros.params_files:
        values.update(_file_parameters(path, ros))
    values.update(ros.params)
    ours = {name: value for name, value in values.items() if name.split(".")[0] in sections}
    try:
        return from_dict(LangsceneConfig, unflatten(ours))
    except ConfigError as exc:
        raise ConfigError(f"bad parameter: {exc}") from exc
