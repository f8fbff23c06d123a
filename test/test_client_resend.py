"""NodeClient.call's ``resend_after_s``: an idempotent request unanswered for that long is sent again,
and the first answer to any copy is returned (#21: replies the middleware lost at a planner's start)."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from std_srvs.srv import Trigger

from langscene_ros.client import NodeClient, ServiceUnavailable

FIRST_CALL_HOLD_S = 5.0  # the first request is held this long, standing in for a reply that never comes


@pytest.fixture
def slow_first_server():
    """A Trigger service ``/resend_test/trigger`` in its own context whose first request is answered
    only after FIRST_CALL_HOLD_S; every answer says which request (1, 2, ...) it answers."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("resend_test", context=context)
    count = {"n": 0}
    lock = threading.Lock()
    released = threading.Event()  # the held first request has been answered

    def on_trigger(_request, response):
        with lock:
            count["n"] += 1
            n = count["n"]
        if n == 1:
            time.sleep(FIRST_CALL_HOLD_S)
            released.set()
        response.success, response.message = True, f"request {n}"
        return response

    node.create_service(Trigger, "~/trigger", on_trigger, callback_group=ReentrantCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield count
    released.wait(FIRST_CALL_HOLD_S + 10.0)  # no callback left running when the node is destroyed
    time.sleep(0.5)
    executor.shutdown()
    thread.join(timeout=10.0)
    node.destroy_node()
    rclpy.shutdown(context=context)


def test_an_unanswered_request_is_resent_and_the_first_answer_returned(slow_first_server):
    with NodeClient("resend_client", target="/resend_test") as client:
        answer = client.call(Trigger, "trigger", Trigger.Request(), timeout_s=60.0, resend_after_s=1.0)
    assert answer.message == "request 2"
    assert slow_first_server["n"] == 2


def test_without_resend_the_request_is_sent_once(slow_first_server):
    with NodeClient("once_client", target="/resend_test") as client:
        with pytest.raises(ServiceUnavailable, match="did not answer within 2 s"):
            client.call(Trigger, "trigger", Trigger.Request(), timeout_s=2.0)
    assert slow_first_server["n"] == 1
