"""Start the langscene node: `ros2 launch langscene scene.launch.py [params_file:=F] [namespace:=NS]
[image:=TOPIC] [camera_info:=TOPIC] [depth:=TOPIC] [camera_pose:=TOPIC] [rviz:=true]`.

``rviz:=true`` also starts RViz 2 with ``config/langscene.rviz`` (scene, relevancy, answer markers, grasps).

Without a ROS 2 install (pip venv), `langscene run` starts the node the same way.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

# Input topics of the node (relative names) and what they are remapped to by default.
INPUT_TOPICS = {
    "image": "/camera/color/image_raw",
    "camera_info": "/camera/color/camera_info",
    "depth": "/camera/aligned_depth_to_color/image_raw",
    "camera_pose": "/camera/pose",
}


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("langscene"), "config", "langscene.yaml"]),
            description="ROS 2 parameter file for the langscene node",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument(
            "rviz", default_value="false", description="also start RViz 2 with config/langscene.rviz"
        ),
    ] + [
        DeclareLaunchArgument(topic, default_value=default, description=f"topic remapped to the node's '{topic}' input")
        for topic, default in INPUT_TOPICS.items()
    ]
    node = Node(
        package="langscene",
        executable="langscene",
        name="langscene",
        namespace=LaunchConfiguration("namespace"),
        arguments=["run"],
        parameters=[LaunchConfiguration("params_file")],
        remappings=[(topic, LaunchConfiguration(topic)) for topic in INPUT_TOPICS],
        output="screen",
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([FindPackageShare("langscene"), "config", "langscene.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription([*arguments, node, rviz])
