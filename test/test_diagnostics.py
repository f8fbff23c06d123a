"""/diagnostics levels (langscene_ros.diagnostics.InputMonitor): OK while inputs flow, WARN when a required
input is silent or never came (or depth stopped once seen), ERROR when the reconstruction failed."""

import time

from langscene_core.engine import State, Status
from langscene_ros.diagnostics import ERROR, OK, WARN, InputMonitor


def status(state: State = State.COLLECTING, **counts) -> Status:
    return Status(state, 3, 0, 0.0, "3 keyframes", True, rejected=counts)


def by_name(array):
    return {s.name.split(": ")[1]: s for s in array.status}


def test_levels_follow_the_inputs_and_the_reconstruction():
    monitor = InputMonitor("/langscene", ("image", "camera_info"), ("depth",), silent_s=0.2)
    report = by_name(monitor.report(status(), 0))
    assert report["inputs"].level == WARN and "image, camera_info" in report["inputs"].message  # never came
    assert report["scene"].level == OK

    for _ in range(5):
        monitor.seen("image")
        monitor.seen("camera_info")
    report = by_name(monitor.report(status(**{"image: bad encoding": 2}), 1))
    assert report["inputs"].level == OK and report["inputs"].message == "inputs flowing"
    values = {kv.key: kv.value for kv in report["inputs"].values}
    assert float(values["image rate_hz"]) > 0 and values["depth age_s"] == "never"
    assert values["rejected: image: bad encoding"] == "2"
    assert {kv.key: kv.value for kv in report["scene"].values}["internal errors"] == "1"

    monitor.seen("depth")
    time.sleep(0.3)
    monitor.seen("image")
    monitor.seen("camera_info")
    report = by_name(monitor.report(status(), 0))
    assert report["inputs"].level == WARN and report["inputs"].message == "silent: depth"  # seen, then stopped

    failed = Status(State.ERROR, 3, 0, 0.0, "reconstruction failed: out of memory", True)
    report = by_name(monitor.report(failed, 0))
    assert report["scene"].level == ERROR and "out of memory" in report["scene"].message
