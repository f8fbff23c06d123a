"""The node's ``/diagnostics`` (diagnostic_msgs/DiagnosticArray), as robot monitors (rqt_robot_monitor,
diagnostic_aggregator) read them.

Two statuses per report: ``langscene: inputs`` (each camera input's rate over the last report period,
the age of its last message, and the rejected / dropped counts by reason) and ``langscene: scene`` (the
engine's state, keyframes, Gaussians, the last query's age and duration). Levels: WARN when a required
input has been silent for ``node.silent_input_s`` (or never came), or depth, once seen, stopped; ERROR
when the last reconstruction failed.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from langscene_core.engine import State, Status


def _level(value: int) -> bytes:
    return bytes([value])


OK, WARN, ERROR = _level(0), _level(1), _level(2)


class InputMonitor:
    """Counts messages per input and builds the diagnostics (thread-safe: inputs arrive on several threads).

    required: inputs that must flow (image, camera_info, and camera_pose with pose_source topic);
    optional: inputs that warn only once seen (depth). silent_s: node.silent_input_s.
    """

    def __init__(self, node_name: str, required: tuple[str, ...], optional: tuple[str, ...], silent_s: float) -> None:
        self._name = node_name
        self._inputs = (*required, *optional)
        self._required = set(required)
        self._silent_s = silent_s
        self._lock = threading.Lock()
        self._count = dict.fromkeys(self._inputs, 0)
        self._reported = dict.fromkeys(self._inputs, 0)
        self._last: dict[str, float] = {}
        self._report_time = time.monotonic()
        self._query: tuple[float, float] | None = None  # (monotonic time, seconds it took)

    def seen(self, name: str) -> None:
        """One message arrived on input ``name``."""
        with self._lock:
            self._count[name] += 1
            self._last[name] = time.monotonic()

    def queried(self, seconds: float) -> None:
        """A query was answered in ``seconds``."""
        with self._lock:
            self._query = (time.monotonic(), seconds)

    def report(self, status: Status, internal_errors: int) -> DiagnosticArray:
        """The two statuses for the engine's ``status`` (rates since the previous report)."""
        now = time.monotonic()
        with self._lock:
            period = max(now - self._report_time, 1e-6)
            rates = {n: (self._count[n] - self._reported[n]) / period for n in self._inputs}
            self._reported, self._report_time = dict(self._count), now
            ages = {n: now - self._last[n] for n in self._last}
            query = self._query
        silent = [
            n for n in self._inputs if (n in self._required or n in ages) and ages.get(n, float("inf")) > self._silent_s
        ]
        values = [KeyValue(key=f"{n} rate_hz", value=f"{rates[n]:.1f}") for n in self._inputs]
        values += [KeyValue(key=f"{n} age_s", value=f"{ages[n]:.1f}" if n in ages else "never") for n in self._inputs]
        values += [KeyValue(key=f"rejected: {reason}", value=str(n)) for reason, n in sorted(status.rejected.items())]
        values += [
            KeyValue(key=f"dropped: {reason}", value=str(n)) for reason, n in sorted(status.dropped.items()) if n
        ]
        inputs = DiagnosticStatus(
            level=WARN if silent else OK,
            name=f"{self._name}: inputs",
            message=f"silent: {', '.join(silent)}" if silent else "inputs flowing",
            hardware_id=self._name,
            values=values,
        )
        scene_values = [
            KeyValue(key="state", value=status.state.value),
            KeyValue(key="keyframes", value=str(status.keyframes)),
            KeyValue(key="gaussians", value=str(status.gaussians)),
            KeyValue(key="progress", value=f"{status.progress:.2f}"),
            KeyValue(key="internal errors", value=str(internal_errors)),
        ]
        if query is not None:
            scene_values += [
                KeyValue(key="last query age_s", value=f"{now - query[0]:.1f}"),
                KeyValue(key="last query ms", value=f"{query[1] * 1000.0:.1f}"),
            ]
        scene = DiagnosticStatus(
            level=ERROR if status.state is State.ERROR else OK,
            name=f"{self._name}: scene",
            message=status.message,
            hardware_id=self._name,
            values=scene_values,
        )
        return DiagnosticArray(status=[inputs, scene])
