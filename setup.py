"""pip install of the langscene Python packages (the ROS interfaces are built by CMakeLists.txt)."""

from glob import glob

from setuptools import find_packages, setup

setup(
    # The distribution name differs from "langscene", the ROS interface package CMake installs into
    # the same site-packages: pip would otherwise uninstall the generated messages.
    name="langscene-py",
    version="0.1.0",
    description="Language-embedded 3D scenes from sparse keyframes (LangScene-X) as a ROS 2 package",
    packages=find_packages(include=["langscene_core", "langscene_core.*", "langscene_ros", "langscene_ros.*"]),
    package_data={"langscene_core": ["assets/**/*"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=[
        "numpy",
        "pyyaml",
        "torch",
        "torchvision",
        "diffusers",
        "accelerate",
        "transformers",
        "open_clip_torch",
        "gsplat",
        "open3d-cpu",
        "pycolmap",
        "scikit-image",
        "scipy",
        "numba",
        "pillow",
        "safetensors",
        "sentencepiece",
    ],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/langscene"]),
        ("share/langscene", ["package.xml"]),
        ("share/langscene/launch", ["launch/scene.launch.py"]),
        # every shipped settings file, where langscene_core.config.config_path finds them installed
        ("share/langscene/config", sorted(glob("config/*"))),
    ],
    entry_points={"console_scripts": ["langscene = langscene_ros.cli:main"]},
)
