"""The import structure of ``langscene_core`` follows DESIGN.md section 1b.

Every import statement is read with :mod:`ast` (module level and inside functions alike), so a lazy
import that goes against the pipeline's direction fails here as much as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "langscene_core"

# Shared by every package: settings, the exception family and the bundled-model resolver.
BASE = {"config", "errors", "assets"}
# What each package of the core may import besides BASE and itself (DESIGN 1b: geometry <- capture,
# language, field, trimap <- reconstruction <- query <- engine <- eval; sim on geometry and capture).
STAGES = {"geometry", "capture", "language", "field", "trimap"}
ALLOWED = {
    "geometry": set(),
    "capture": {"geometry"},
    "language": {"geometry", "capture"},
    "field": {"geometry", "capture"},
    "trimap": {"geometry", "capture"},
    "reconstruction": STAGES,
    "query": STAGES | {"reconstruction"},
    "engine": STAGES | {"reconstruction", "query"},
    "eval": STAGES | {"reconstruction", "query", "engine", "sim"},
    "sim": {"geometry", "capture"},
    "training": STAGES | {"reconstruction", "query", "sim"},
}
ROS_MODULES = (
    "rclpy",
    "langscene_ros",
    "langscene.",
    "sensor_msgs",
    "geometry_msgs",
    "std_msgs",
    "std_srvs",
    "visualization_msgs",
    "builtin_interfaces",
    "tf2_ros",
    "tf2_msgs",
    "rosbags",
    "diagnostic_msgs",
)


def package_of(path: Path) -> str:
    """``langscene_core/query/grasp/planner.py`` -> ``query``; ``langscene_core/engine.py`` -> ``engine``."""
    return path.relative_to(CORE).parts[0].removesuffix(".py")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = ["langscene_core", *path.relative_to(CORE).with_suffix("").parts]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from langscene_core import clip` names a module too.
            if module == "langscene_core":
                found += [(node.lineno, f"langscene_core.{alias.name}") for alias in node.names]
    return found


MODULES = sorted(p for p in CORE.rglob("*.py"))


def test_every_package_is_classified():
    packages = {package_of(p) for p in MODULES} - {"__init__"}
    assert packages <= set(ALLOWED) | BASE, f"unclassified packages: {packages - set(ALLOWED) - BASE}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_imports_follow_the_pipeline(path):
    package = package_of(path)
    allowed = (BASE | {package} | ALLOWED.get(package, set())) if package in ALLOWED else BASE
    wrong = []
    for line, module in imported_modules(path):
        if module.startswith(ROS_MODULES) or module in {"langscene", "rclpy"}:
            wrong.append(f"line {line}: {module} (no ROS in langscene_core)")
        elif module.startswith("langscene_core."):
            target = module.split(".")[1]
            if target not in allowed:
                wrong.append(f"line {line}: {module} ({package} may not import {target})")
    assert not wrong, f"{path.relative_to(CORE)}: " + "; ".join(wrong)


def test_the_checker_catches_a_wrong_arrow(tmp_path, monkeypatch):
    """The test itself can fail: a geometry module importing the query stage is reported."""
    fake_core = tmp_path / "langscene_core"
    (fake_core / "geometry").mkdir(parents=True)
    bad = fake_core / "geometry" / "bad.py"
    bad.write_text("def f():\n    from langscene_core.query.objects import query_object\n    import rclpy\n")
    monkeypatch.setitem(globals(), "CORE", fake_core)
    with pytest.raises(AssertionError, match=r"geometry may not import query.*no ROS"):
        test_imports_follow_the_pipeline(bad)
