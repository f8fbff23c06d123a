"""``langscene query PROMPT``: ask a running node's ~/query_object and print the answer."""

from __future__ import annotations

import argparse
import json

from langscene_ros.commands import UsageError


def format_answer(answer: dict) -> str:
    """Human-readable lines for a query answer dict (see client.query_response_to_dict)."""
    if not answer["success"]:
        return f"no answer: {answer['message']}"
    lines = [
        f"{answer['points']} relevant points, max relevancy {answer['max_relevancy']:.3f}"
        + (f" ({answer['message']})" if answer["message"] else "")
    ]
    if "object" in answer:
        obj = answer["object"]
        lines.append(
            "object centre [{:.3f} {:.3f} {:.3f}] m, extent [{:.3f} {:.3f} {:.3f}] m, frame {}".format(
                *obj["position"], *obj["extent"], obj["frame"]
            )
        )
    for i, grasp in enumerate(answer["grasps"]):
        lines.append(
            "grasp {}: score {:.3f}, width {:.3f} m, at [{:.3f} {:.3f} {:.3f}]".format(
                i, grasp["score"], grasp["width"], *grasp["pose"]["position"]
            )
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not args.prompt.strip():
        raise UsageError("the prompt is empty")
    from langscene.srv import QueryObject
    from langscene_ros.client import NodeClient, ServiceUnavailable, query_request, query_response_to_dict

    with NodeClient("langscene_query_client") as client:
        request = query_request(args.prompt, args.negatives, args.threshold, args.max_points, args.max_grasps)
        try:
            response = client.call(QueryObject, args.service, request, timeout_s=args.timeout)
        except ServiceUnavailable as exc:
            raise UsageError(str(exc)) from exc
    answer = query_response_to_dict(response)
    print(json.dumps(answer, indent=2) if args.json else format_answer(answer))
    return 0 if answer["success"] else 1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "query",
        help="query a running langscene node",
        description="Call ~/query_object of a running node and print the answer.",
    )
    parser.add_argument("prompt", help='what to find, e.g. "red mug"')
    parser.add_argument("--negatives", nargs="*", default=[], help="extra negative phrases")
    parser.add_argument("--threshold", type=float, default=0.0, help="relevancy threshold (0: node default)")
    parser.add_argument("--max-points", type=int, default=0, help="cap on returned points (0: node default)")
    parser.add_argument("--max-grasps", type=int, default=0, help="cap on grasps (0: node default)")
    parser.add_argument("--service", default="/langscene/query_object", help="service name")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the node")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(run=run)
