"""langscene_ros: the ROS 2 boundary of langscene (node, message conversions, RViz output, CLI)."""
