"""Settings files are found where the package is installed, not only in a source checkout.

The unit tests load a copy of ``langscene_core/config.py`` placed in fake layouts; the slow test
builds the package with colcon into a temporary workspace, as a ROS user does, and runs the
installed ``langscene demo`` to the end with its default settings files.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(path.name for path in (REPO / "config").iterdir())
COLCON = REPO / "build" / "colcon-venv" / "bin" / "colcon"  # installed by scripts/setup.sh
VENV = Path(sys.prefix)  # the project venv: its ROS wheels are the prefix colcon builds against
PYTHON_DIR = f"python{sys.version_info.major}.{sys.version_info.minor}"


def load_config_module(package_dir: Path):
    """langscene_core/config.py copied to ``package_dir`` and imported from there (its own module)."""
    package_dir.mkdir(parents=True)
    shutil.copy(REPO / "langscene_core" / "config.py", package_dir / "config.py")
    spec = importlib.util.spec_from_file_location("installed_config_copy", package_dir / "config.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def write_config_dir(directory: Path, names: list[str]) -> None:
    directory.mkdir(parents=True)
    for name in names:
        (directory / name).write_text("langscene:\n  ros__parameters: {}\n")


def test_every_package_manifest_parses_as_ament_reads_it():
    """An XML mistake in package.xml (a ``--`` inside a comment) fails setup's interface build on a
    clean clone only, since a ready checkout skips it; catkin_pkg is the parser ament uses."""
    from catkin_pkg.package import parse_package

    manifests = [REPO / "package.xml", *sorted((REPO / "interfaces").glob("*/package.xml"))]
    assert len(manifests) >= 2
    for manifest in manifests:
        assert parse_package(str(manifest)).name, manifest


def test_config_path_in_the_checkout_is_its_config_directory():
    from langscene_core.config import DEFAULT_CONFIG_PATH, config_path

    assert "langscene.yaml" in SHIPPED and "demo.yaml" in SHIPPED and "demo_scene.json" in SHIPPED
    assert DEFAULT_CONFIG_PATH == REPO / "config" / "langscene.yaml"
    for name in SHIPPED:
        assert config_path(name) == REPO / "config" / name
    assert config_path("missing.yaml") == REPO / "config" / "missing.yaml"  # the error names it


def test_config_path_installed_prefers_its_own_prefix_then_ament_index(tmp_path, monkeypatch):
    prefix = tmp_path / "prefix"
    ament_prefix = tmp_path / "other"
    write_config_dir(prefix / "share" / "langscene" / "config", ["langscene.yaml"])
    write_config_dir(ament_prefix / "share" / "langscene" / "config", ["langscene.yaml", "demo.yaml"])
    (ament_prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (ament_prefix / "share" / "ament_index" / "resource_index" / "packages" / "langscene").write_text("")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(ament_prefix))

    config = load_config_module(prefix / "lib" / PYTHON_DIR / "site-packages" / "langscene_core")
    assert config.DEFAULT_CONFIG_PATH == prefix / "share" / "langscene" / "config" / "langscene.yaml"
    assert config.config_path("demo.yaml") == ament_prefix / "share" / "langscene" / "config" / "demo.yaml"
    # found nowhere: the install's own place, which the error of whoever opens it then names
    assert config.config_path("none.json") == prefix / "share" / "langscene" / "config" / "none.json"


# A scene small enough for a few minutes on 2 cores (the default scene takes about 3); everything else
# (the node's parameter file, the bundled models) comes from the install's defaults.
SMALL_SCENE = {
    "objects": [{"name": "red box", "shape": "box", "color": "red", "size": 0.07, "position": [0.08, 0.0]}],
    "camera": {"width": 64, "height": 48, "views": 6, "radius": 0.6},
    "eval_views": 1,
}


def installed_env(workspace: Path) -> dict[str, str]:
    """The environment of a shell that sourced the workspace's install/setup.bash (colcon's own script),
    with the venv's ROS wheels as the underlay and nothing of the source tree on the path."""
    base = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    base.update(PATH=f"{VENV / 'bin'}:{base['PATH']}", AMENT_PREFIX_PATH=str(VENV))
    dump = subprocess.run(
        ["bash", "-c", f"source {workspace / 'install' / 'setup.bash'} && env -0"],
        env=base,
        capture_output=True,
        check=True,
    ).stdout
    return dict(item.split("=", 1) for item in dump.decode().split("\0") if "=" in item)


@pytest.mark.slow
def test_colcon_build_then_the_installed_demo_runs_on_its_installed_settings(tmp_path):
    """The build (37 s on 2 idle cores, 2 min at load 15), a first import compiling the numba kernels
    into the install (as scripts/setup.sh does for the venv), the demo on a small scene (85 s at load
    10): 11 minutes in all at load 11."""
    if not COLCON.is_file():
        pytest.skip(f"colcon is not installed at {COLCON}: scripts/setup.sh could not pip install it")
    build_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    build_env.update(
        PATH=f"{VENV / 'bin'}:{build_env['PATH']}", AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV)
    )
    # A copy of the source as a clone has it: built in place, CMake refuses the venv inside the checkout
    # (numpy's include dir of .venv would be "prefixed in the source directory").
    source = tmp_path / "src" / "langscene"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    build = subprocess.run(
        [
            str(COLCON),
            "--log-base",
            "log",
            "build",
            "--base-paths",
            str(source),
            "--cmake-args",
            "-G",
            "Ninja",
            f"-DPython3_EXECUTABLE={VENV / 'bin' / 'python'}",
            "-DBUILD_TESTING=OFF",
        ],
        cwd=tmp_path,
        env=build_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    install = tmp_path / "install" / "langscene"
    shared = install / "share" / "langscene" / "config"
    assert sorted(path.name for path in shared.iterdir()) == SHIPPED

    env = installed_env(tmp_path)
    env["ROS_DOMAIN_ID"] = str(1 + (os.getpid() + 50) % 100)  # not the suite's domain (conftest)
    where = subprocess.run(
        [
            "python",
            "-c",
            "import json, langscene_core.config as c, langscene_ros.commands.demo as d, "
            "langscene_core.query.grasp.kernels, langscene_core.geometry.voxel; "
            "print(json.dumps([c.__file__, str(c.DEFAULT_CONFIG_PATH), str(d.DEMO_SPEC), str(d.DEMO_PARAMS)]))",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    module, default, spec, params = json.loads(where.stdout)
    assert Path(module).is_relative_to(install), f"the installed package is not the one imported: {module}"
    assert (default, spec, params) == tuple(
        str(shared / name) for name in ("langscene.yaml", "demo_scene.json", "demo.yaml")
    )

    (tmp_path / "small_scene.json").write_text(json.dumps(SMALL_SCENE))
    demo = subprocess.run(
        [str(install / "lib" / "langscene" / "langscene"), "demo", "--spec", "small_scene.json", "--json", "demo.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    node_log = tmp_path / "build" / "demo" / "node.log"
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    result = json.loads((tmp_path / "demo.json").read_text())
    # the answers as pictures (#20): a top view PNG and a Foxglove MCAP of every prompt
    pictures = result["pictures"]
    assert Path(pictures["png"]).is_file() and pictures["messages"]["/answers"] == len(result["queries"])
    located = [q for q in result["queries"] if q["prompt"] == "red box"]
    assert located and located[0]["success"] and located[0]["center_error_m"] is not None, (
        result["queries"],
        node_log.read_text()[-3000:] if node_log.is_file() else "no node log",
    )
