#!/usr/bin/env bash
# One-command, idempotent setup of langscene on a fresh Debian machine:
#   Debian packages -> .venv with the pinned requirements -> the langscene ROS interfaces built with
#   CMake into the venv -> the project installed in editable mode.
# A second run on a ready machine only checks a stamp (a hash of everything that feeds the setup).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=$VENV/bin/python
STAMP=$VENV/.langscene-setup
APT_PACKAGES=(libusb-1.0-0 ninja-build cmake g++)

fingerprint() {
  cat requirements.txt setup.py pyproject.toml CMakeLists.txt package.xml scripts/setup.sh msg/*.msg srv/*.srv action/*.action \
    interfaces/find_tf2_msgs/CMakeLists.txt interfaces/tf2_msgs/CMakeLists.txt interfaces/tf2_msgs/package.xml \
    interfaces/tf2_msgs/msg/*.msg \
    | sha256sum | cut -d' ' -f1
}

# colcon builds the package as a ROS workspace does (test/test_colcon_install.py). It is a build tool,
# not a dependency: a venv of its own (build/colcon-venv), installed once. Optional: without it that
# test skips and says why.
COLCON_VENV=$ROOT/build/colcon-venv
if [[ ! -x $COLCON_VENV/bin/colcon ]]; then
  echo "setup: installing colcon into build/colcon-venv"
  { python3 -m venv "$COLCON_VENV" \
    && "$COLCON_VENV/bin/pip" install -q --disable-pip-version-check "colcon-common-extensions==0.3.0"; } 2>&1 \
    | grep -v "is ignored: it is neither" || true
  [[ -x $COLCON_VENV/bin/colcon ]] || echo "setup: colcon did not install; the colcon install test will skip" >&2
fi

if [[ -f $STAMP && "$(cat "$STAMP")" == "$(fingerprint)" ]] \
   && "$PY" -c "import langscene.srv, langscene_ros, tf2_msgs.msg" 2>/dev/null; then
  exit 0
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[[ -x $PY ]] || python3 -m venv "$VENV"
echo "setup: installing Python requirements into .venv (first time: several minutes)"
"$PY" -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "is ignored: it is neither" || true
"$PY" -c "import torch, rclpy, open3d, gsplat, diffusers, open_clip, pycolmap, skimage, numba" \
  || { echo "setup: the Python requirements did not install; see the pip output above" >&2; exit 1; }

# The ROS wheels' python-generator exports name the wheel builder's Python and numpy include dirs;
# point them at this venv's so that rosidl can build our interfaces against them.
PY_INCLUDE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NP_INCLUDE=$("$PY" -c "import numpy; print(numpy.get_include())")
for f in "$VENV"/share/*/cmake/*rosidl_generator_pyExport*.cmake; do
  sed -i -E "s#/opt/python/cp311-cp311/include/python3\.11#${PY_INCLUDE}#g; s#/opt/python/cp311-cp311/lib/python3\.11/site-packages/numpy/_core/include#${NP_INCLUDE}#g" "$f"
done

echo "setup: building the langscene interfaces (msg/srv) into .venv"
BUILD=$ROOT/build/interfaces
mkdir -p "$ROOT/build"
rm -rf "$BUILD"
AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH cmake -S "$ROOT" -B "$BUILD" -G Ninja \
  -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" \
  -DBUILD_TESTING=OFF -DLANGSCENE_INSTALL_PYTHON=OFF >"$ROOT/build/interfaces.log" 2>&1 \
  && AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH cmake --build "$BUILD" --target install >>"$ROOT/build/interfaces.log" 2>&1 \
  || { echo "setup: interface build failed; see build/interfaces.log" >&2; tail -20 "$ROOT/build/interfaces.log" >&2; exit 1; }

# /tf and /tf_static carry tf2_msgs/TFMessage, which the ROS wheels lack: build the wire-compatible
# stand-in in interfaces/tf2_msgs, but only where find_package(tf2_msgs) fails (a full ROS install
# keeps its own).
if ! AMENT_PREFIX_PATH=$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH} PATH=$VENV/bin:$PATH cmake \
    -S "$ROOT/interfaces/find_tf2_msgs" -B "$ROOT/build/find_tf2_msgs" \
    -DCMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+;$CMAKE_PREFIX_PATH}" >"$ROOT/build/find_tf2_msgs.log" 2>&1; then
  echo "setup: building the tf2_msgs stand-in (TFMessage) into .venv"
  BUILD_TF2=$ROOT/build/tf2_msgs
  rm -rf "$BUILD_TF2"
  AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH cmake -S "$ROOT/interfaces/tf2_msgs" -B "$BUILD_TF2" -G Ninja \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" \
    -DBUILD_TESTING=OFF >"$ROOT/build/tf2_msgs.log" 2>&1 \
    && AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH cmake --build "$BUILD_TF2" --target install >>"$ROOT/build/tf2_msgs.log" 2>&1 \
    || { echo "setup: tf2_msgs build failed; see build/tf2_msgs.log" >&2; tail -20 "$ROOT/build/tf2_msgs.log" >&2; exit 1; }
fi
rm -rf "$ROOT/build/find_tf2_msgs"

"$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored: it is neither" || true
"$PY" -c "from langscene.srv import QueryObject; from langscene.msg import GraspCandidate; from tf2_msgs.msg import TFMessage; import langscene_ros" \
  || { echo "setup: the langscene interfaces do not import" >&2; exit 1; }
echo "setup: compiling the query's numba kernels into their cache (first time: about a minute)"
"$PY" -c "import langscene_core.query.grasp.kernels, langscene_core.geometry.voxel" \
  || { echo "setup: the numba kernels did not compile" >&2; exit 1; }
fingerprint >"$STAMP"
echo "setup: done"
