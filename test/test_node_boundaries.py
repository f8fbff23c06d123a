"""#21: every callback of the node has a boundary. An exception that nothing expects (a bug behind the
callback) becomes a refusal with a message, a rejected input or a skipped tick; it is logged with its
traceback and counted ("internal errors N" in ~/status), and the node goes on answering.

The node runs in this process and is not spun: each entry point is called as the executor would call
it, with the engine method behind it raising :class:`Injected`. An exception escaping a callback would
end a real node, since rclpy's executor re-raises it from ``spin()``.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.action import GoalResponse
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from langscene.action import Reconstruct
from langscene.srv import QueryObject, SceneFile
from langscene_core.engine import LangScene
from langscene_core.geometry.camera import Intrinsics
from langscene_ros import convert, viz

pytestmark = pytest.mark.ros


class Injected(Exception):
    """An exception type that no handler of the node expects."""


def _raise(*args, **kwargs):
    raise Injected("injected")


def _watched(node):
    """``node`` with its ~/status messages kept in ``node.published``."""
    node.published = []
    node._status_pub.publish = node.published.append
    return node


@pytest.fixture
def node(node_with):
    """The node with the default configuration (poses from /tf); conftest's ``node_with``."""
    return _watched(node_with())


def _still_answers(node, errors: int) -> None:
    """The node counts ``errors`` internal errors in its status and answers a query (no scene yet)."""
    node._on_status_timer()
    assert node.published[-1].message.endswith(f"internal errors {errors}"), node.published[-1].message
    answer = node._on_query(QueryObject.Request(prompt="red mug"), QueryObject.Response())
    assert answer.status == QueryObject.Response.NOT_READY, answer.message


SERVICES = [  # (callback, service type, engine method behind it, request)
    ("_on_query", QueryObject, "query", QueryObject.Request(prompt="red mug")),
    ("_on_reconstruct", Trigger, "start_reconstruction", Trigger.Request()),
    ("_on_reset", Trigger, "reset", Trigger.Request()),
    ("_on_clear_scene", Trigger, "clear_scene", Trigger.Request()),
    ("_on_save_scene", SceneFile, "save", SceneFile.Request(path="scene")),
    ("_on_load_scene", SceneFile, "load", SceneFile.Request(path="scene")),
]


@pytest.mark.parametrize("callback, srv, method, request_", SERVICES, ids=[s[0] for s in SERVICES])
def test_a_service_answers_an_unexpected_exception_with_a_refusal(node, monkeypatch, callback, srv, method, request_):
    monkeypatch.setattr(node.engine, method, _raise)
    response = getattr(node, callback)(request_, srv.Response())
    assert not response.success and "internal error Injected('injected')" in response.message, response.message
    if srv is QueryObject:
        assert response.status == QueryObject.Response.FAILED
    monkeypatch.undo()
    _still_answers(node, 1)


def test_the_reconstruction_action_rejects_or_aborts_on_an_unexpected_exception(node, monkeypatch):
    monkeypatch.setattr(LangScene, "busy", property(_raise))
    assert node._on_reconstruction_goal(Reconstruct.Goal()) == GoalResponse.REJECT
    monkeypatch.undo()
    monkeypatch.setattr(node.engine, "start_reconstruction", _raise)
    aborted = []
    goal = SimpleNamespace(request=Reconstruct.Goal(mode=""), abort=lambda: aborted.append(True))
    result = node._execute_reconstruction(goal)
    assert aborted and not result.success and "internal error" in result.message, result.message
    monkeypatch.undo()
    _still_answers(node, 2)


def test_a_parameter_set_is_refused_on_an_unexpected_exception(node, monkeypatch):
    monkeypatch.setattr(node.engine, "update_config", _raise)
    result = node._on_set_parameters([Parameter("query.relevancy_threshold", value=0.6)])
    assert not result.successful and "internal error" in result.reason, result.reason
    monkeypatch.undo()
    _still_answers(node, 1)


def _inputs():
    """(handler name, engine method it feeds, a valid message) per camera input, each transport."""
    rgb = np.zeros((4, 6, 3), np.uint8)
    return [
        ("camera_info", "set_intrinsics", convert.intrinsics_to_camera_info(Intrinsics(5.0, 5.0, 3.0, 2.0, 6, 4))),
        ("image", "add_image", convert.numpy_to_image(rgb, "rgb8")),
        ("depth", "add_depth", convert.depth_to_image(np.ones((4, 6), np.float32))),
        ("compressed_image", "add_image", convert.rgb_to_compressed(rgb, "png")),
        ("compressed_depth", "add_depth", convert.depth_mm_to_compressed(np.full((4, 6), 1000, np.uint16))),
        ("pose", "add_pose", PoseStamped(pose=convert.matrix_to_pose(np.eye(4)))),
    ]


@pytest.mark.parametrize("handler, method, message", _inputs(), ids=[i[0] for i in _inputs()])
def test_an_input_message_is_rejected_and_counted_on_an_unexpected_exception(
    node_with, monkeypatch, handler, method, message
):
    node = _watched(node_with("node.pose_source:=topic"))  # camera_pose is an input only then
    monkeypatch.setattr(node.engine, method, _raise)
    getattr(node._inputs, handler)(message)
    monkeypatch.undo()
    assert any("internal error in the engine" in reason for reason in node.engine.status().rejected)
    _still_answers(node, 1)


def test_a_tf_message_is_rejected_and_counted_on_an_unexpected_exception(node, monkeypatch):
    monkeypatch.setattr(node.engine.transforms, "set_transform", _raise)  # the buffer the listener feeds
    stamp = convert.seconds_to_stamp(1.0)
    node._tf._receive(
        TFMessage(transforms=[convert.matrix_to_transform_stamped(np.eye(4), "map", "camera", stamp)]), False
    )
    monkeypatch.undo()
    assert "/tf: internal error" in node.engine.status().rejected
    _still_answers(node, 1)


def test_the_status_timer_and_the_drawing_skip_a_tick_on_an_unexpected_exception(node, monkeypatch):
    monkeypatch.setattr(node.engine, "status", _raise)
    node._on_status_timer()
    monkeypatch.undo()
    node._undrawn_answer = (None, "red mug", node._header(), None)  # a result that cannot be drawn
    node._draw_last_answer()
    _still_answers(node, 2)


def _load_world_scene(node, tmp_path) -> None:
    """Give ``node`` the small world scene of world_scene.py (red box, blue ball) through its scene
    directory, as ~/load_scene would."""
    from world_scene import SPEC, make_scene

    from langscene_core.reconstruction.scene import save_scene
    from langscene_core.sim import build_world, parse_spec

    save_scene(make_scene(build_world(parse_spec(SPEC)), node.engine.models), tmp_path / "world.ply")
    node.engine.load("world")


def test_answers_are_drawn_after_the_query_and_a_burst_once_the_newest(node, tmp_path):
    """The answer topics are not published inside the query callback; the drawing callback publishes the
    newest undrawn answer's grasps and markers once (README, Topics and services)."""
    _load_world_scene(node, tmp_path)
    drawn = []
    node._grasps_pub.publish = lambda msg: drawn.append(("grasps", msg))
    node._markers_pub.publish = lambda msg: drawn.append(("markers", msg))
    for prompt in ("blue ball", "red box"):
        answer = node._on_query(QueryObject.Request(prompt=prompt), QueryObject.Response())
        assert answer.success, answer.message
    assert drawn == []
    node._draw_last_answer()
    node._draw_last_answer()  # nothing left to draw
    assert [topic for topic, _ in drawn] == ["grasps", "markers"]
    labels = [m.text for m in drawn[1][1].markers if m.ns == viz.NAMESPACE_LABEL]
    assert len(labels) == 1 and labels[0].startswith("red box:"), labels


def test_any_query_request_gets_an_answer_or_a_refusal_never_an_internal_error(node, tmp_path):
    """Fuzzing the query handler (hypothesis) on a scene: any prompt (control characters, any script,
    overlong), any negatives, any threshold (NaN, infinite, negative), any counts and target frames get
    FOUND / NO_OBJECT or BAD_REQUEST with a message; none is an internal error (a bug)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    _load_world_scene(node, tmp_path)
    counts = st.one_of(st.integers(0, 12), st.integers(0, 2**32 - 1))
    requests = st.builds(
        QueryObject.Request,
        prompt=st.one_of(st.sampled_from(["red box", "blue ball", "table", "mug"]), st.text(max_size=300)),
        negatives=st.lists(st.text(max_size=300), max_size=40),
        relevancy_threshold=st.floats(width=32),
        max_points=counts,
        max_grasps=counts,
        max_objects=counts,
        skip_cloud=st.booleans(),
        target_frame=st.one_of(st.sampled_from(["", "map", "base_link"]), st.text(max_size=20)),
    )
    ok = (QueryObject.Response.FOUND, QueryObject.Response.NO_OBJECT)

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(request=requests)
    def answer(request):
        response = node._on_query(request, QueryObject.Response())
        assert response.status in (*ok, QueryObject.Response.BAD_REQUEST), (response.status, response.message)
        assert response.success == (response.status in ok) and response.message, response.message
        assert node._internal_errors == 0

    answer()
