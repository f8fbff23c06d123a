"""validate_query_request: what one query may ask for, each bound named in the refusal."""

import pytest

from langscene_core.config import LimitsConfig
from langscene_core.query.limits import RequestError, validate_query_request

LIMITS = LimitsConfig(max_prompt_chars=20, max_negatives=2, max_negative_chars=10, max_points=100, max_grasps=5)


def test_requests_within_the_limits_pass():
    validate_query_request("red mug", [], LIMITS)
    validate_query_request("x" * 20, ["a" * 10, "plate"], LIMITS, max_points=100, max_grasps=5)
    validate_query_request("tasse rouge é 杯子", ["ombre"], LIMITS, max_points=0, max_grasps=0)


@pytest.mark.parametrize(
    ("prompt", "negatives", "counts", "message"),
    [
        ("", [], {}, "empty prompt"),
        ("   \t", [], {}, "empty prompt"),
        ("x" * 21, [], {}, "prompt has 21 characters; at most 20 .limits.max_prompt_chars"),
        ("red\x00mug", [], {}, "control character"),
        ("red\x1b[2Jmug", [], {}, "control character"),
        ("red\x85mug", [], {}, "control character"),  # C1 (NEL)
        ("mug", ["a", "b", "c"], {}, "3 negatives; at most 2"),
        ("mug", [""], {}, r"empty negatives\[0\]"),
        ("mug", ["ok", "y" * 11], {}, r"negatives\[1\] has 11 characters; at most 10 .limits.max_negative_chars"),
        ("mug", ["a\nb"], {}, "control character"),
        ("mug", [], {"max_points": 101}, r"max_points 101 is not in \[0, 100\]"),
        ("mug", [], {"max_grasps": 6}, r"max_grasps 6 is not in \[0, 5\]"),
        ("mug", [], {"max_points": 2**32 - 1}, "max_points 4294967295"),
    ],
)
def test_requests_out_of_bounds_are_refused_naming_the_field(prompt, negatives, counts, message):
    with pytest.raises(RequestError, match=message):
        validate_query_request(prompt, negatives, LIMITS, **counts)


def test_the_shipped_defaults_allow_a_normal_request_and_refuse_a_huge_one():
    limits = LimitsConfig()
    validate_query_request("the red mug on the left", ["plate", "table"], limits, max_points=200000, max_grasps=10)
    with pytest.raises(RequestError):
        validate_query_request("mug " * 1000, [], limits)
    with pytest.raises(RequestError):
        validate_query_request("mug", ["x"] * 1000, limits)
