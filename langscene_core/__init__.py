"""langscene_core: ROS-free library of the LangScene-X pipeline (torch / numpy).

Frames: camera poses are camera-to-world 4x4 matrices in the OpenCV / ROS optical convention
(x right, y down, z forward); every 3D output is in the scene (world) frame.
"""
