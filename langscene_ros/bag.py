"""rosbag2 bags (a bag directory, sqlite3 or MCAP, or a single ``.mcap`` file) through ``rosbags``.

Messages are rclpy message objects on both sides: written as rclpy's CDR bytes
(``rclpy.serialization``, the bytes a ROS 2 publisher sends), read back into the rclpy types the
node's subscriptions receive, so the conversions in :mod:`langscene_ros.inputs` see exactly what the
node sees. The MCAP files carry their message definitions (``ros2msg`` schemas), so other tools
(``mcap-ros2-support``, Foxglove, ``ros2 bag``) read them. Nothing here starts a ROS context or DDS.

Errors: every problem with a bag (missing, corrupt, a topic of another type than expected, a message
that does not deserialize) raises :class:`BagError` with one line naming the bag and what is wrong.
"""

from __future__ import annotations

import functools
import importlib
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from rclpy.serialization import deserialize_message, serialize_message

from langscene_core.errors import LangsceneError


class BagError(LangsceneError, ValueError):
    """A bag that cannot be read or written as asked; the message names the bag and the problem."""


@functools.cache
def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def type_name(message_type: type) -> str:
    """The ROS 2 type name of an rclpy message class (``sensor_msgs/msg/Image``)."""
    return f"{message_type.__module__.split('.')[0]}/msg/{message_type.__name__}"


def message_type(name: str) -> type:
    """The rclpy message class of a ROS 2 type name (``sensor_msgs/msg/Image``); BagError when its
    package is not installed here."""
    package, kind, cls = (name.split("/") + ["", ""])[:3]
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), cls)
    except (ImportError, AttributeError, ValueError) as exc:
        raise BagError(f"message type {name!r} is not installed here") from exc


def write_bag(path: str | Path, records: Iterable[tuple[str, int, object]]) -> dict[str, int]:
    """Write ``records`` (topic, log time in ns, rclpy message), in order, as an MCAP bag; returns the
    message count per topic. ``path`` ending in ``.mcap``: one MCAP file; else a rosbag2 directory
    (``metadata.yaml`` + MCAP storage). BagError when ``path`` exists or a type is unknown to ROS 2
    Jazzy's message definitions."""
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    path = Path(path)
    if path.exists():
        raise BagError(f"{path} exists already; not overwriting it")
    single_file = path.suffix == ".mcap"
    if not path.parent.is_dir():
        raise BagError(f"cannot write {path}: directory {path.parent} does not exist")
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) if single_file else None
    bag_dir = staging / path.stem if staging is not None else path
    counts: Counter[str] = Counter()
    try:
        with Writer(bag_dir, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            connections = {}
            for topic, stamp_ns, message in records:
                if topic not in connections:
                    name = type_name(type(message))
                    if name not in _typestore().types:
                        raise BagError(f"cannot write {topic}: type {name} has no ROS 2 Jazzy definition")
                    connections[topic] = writer.add_connection(topic, name, typestore=_typestore())
                writer.write(connections[topic], int(stamp_ns), serialize_message(message))
                counts[topic] += 1
        if staging is not None:
            (mcap,) = bag_dir.glob("*.mcap")
            mcap.replace(path)
    except WriterError as exc:
        raise BagError(f"cannot write {path}: {exc}") from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return dict(counts)


@dataclass(frozen=True)
class BagTopic:
    """A topic of a bag: its ROS 2 type name and message count."""

    type: str
    count: int


class BagReader:
    """A bag opened for reading (a context manager). :attr:`topics`: topic -> :class:`BagTopic`."""

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag (a rosbag2 directory or an .mcap file)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds on a broken file
            raise BagError(f"{self.path}: not a readable bag ({_one_line(exc)})") from exc
        self.topics: dict[str, BagTopic] = {}
        for connection in self._reader.connections:
            known = self.topics.get(connection.topic)
            count = connection.msgcount + (known.count if known else 0)
            if known is not None and known.type != connection.msgtype:
                raise BagError(
                    f"{self.path}: topic {connection.topic} holds two types ({known.type}, {connection.msgtype})"
                )
            self.topics[connection.topic] = BagTopic(connection.msgtype, count)

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    def check(self, expected: Mapping[str, type], required: Iterable[str]) -> None:
        """BagError when a ``required`` topic is missing, or a topic of ``expected`` (topic -> rclpy
        message class) holds another type."""
        for topic, kind in expected.items():
            found = self.topics.get(topic)
            if found is not None and found.type != type_name(kind):
                raise BagError(f"{self.path}: topic {topic} holds {found.type}, expected {type_name(kind)}")
        missing = [topic for topic in required if topic not in self.topics]
        if missing:
            present = ", ".join(f"{t} ({info.type})" for t, info in sorted(self.topics.items())) or "none"
            raise BagError(f"{self.path}: no topic {', '.join(missing)} in the bag; it holds: {present}")

    def raw_messages(self, topics: Iterable[str]) -> Iterator[tuple[str, int, bytes]]:
        """(topic, log time ns, CDR bytes) of ``topics`` in log-time order. BagError on a corrupt part,
        including one that rosbags skips silently: fewer messages read than the bag's index counts."""
        wanted = set(topics)
        connections = [c for c in self._reader.connections if c.topic in wanted]
        read: Counter[str] = Counter()
        try:
            for connection, stamp_ns, data in self._reader.messages(connections=connections):
                read[connection.topic] += 1
                yield connection.topic, stamp_ns, bytes(data)
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt chunk surfaces as many kinds of errors
            raise BagError(f"{self.path}: corrupt bag data ({_one_line(exc)})") from exc
        short = {
            t: (read[t], self.topics[t].count) for t in wanted & set(self.topics) if read[t] < self.topics[t].count
        }
        if short:
            lost = ", ".join(f"{t} {n} of {total}" for t, (n, total) in sorted(short.items()))
            raise BagError(f"{self.path}: corrupt bag data: read only {lost} indexed messages")

    def messages(self, types: Mapping[str, type]) -> Iterator[tuple[str, int, object]]:
        """(topic, log time ns, rclpy message) of the topics of ``types`` (topic -> message class), in
        log-time order. BagError on a corrupt part or a message that does not deserialize."""
        for topic, stamp_ns, data in self.raw_messages(types):
            try:
                message = deserialize_message(data, types[topic])
            except Exception as exc:  # noqa: BLE001
                raise BagError(
                    f"{self.path}: message on {topic} at {stamp_ns} ns does not deserialize as "
                    f"{type_name(types[topic])} ({_one_line(exc)})"
                ) from exc
            yield topic, stamp_ns, message


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
