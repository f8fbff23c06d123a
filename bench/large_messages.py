"""Benchmark best_effort_frames_delivered (#20): 640x480 camera frames (0.9 MB rgb8-sized and 1.2 MB
32FC1-sized sensor_msgs/Image) published best effort from one process to a subscriber in another on
this machine, with Fast DDS's default profile and with config/fastdds_large_messages.xml (exported to
both processes as FASTRTPS_DEFAULT_PROFILES_FILE). One JSON line per profile; value = the fraction of
frames delivered. Uses ROS_DOMAIN_ID 77 unless ROS_DOMAIN_ID is set."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "config" / "fastdds_large_messages.xml"
FRAMES = 20
SIZES = (640 * 480 * 3, 640 * 480 * 4)

ROLE = """
import sys, time
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("large_messages_" + sys.argv[1])
if sys.argv[1] == "sub":
    got = []
    node.create_subscription(Image, "/large_messages", lambda m: got.append(len(m.data)), qos_profile_sensor_data)
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end and len(got) < int(sys.argv[3]):
        rclpy.spin_once(node, timeout_sec=0.1)
    print(len(got))
else:
    pub = node.create_publisher(Image, "/large_messages", qos_profile_sensor_data)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    sizes = [int(s) for s in sys.argv[2].split(",")]
    for i in range(int(sys.argv[3])):
        size = sizes[i % len(sizes)]
        pub.publish(Image(height=480, width=size // 480, encoding="mono8", step=size // 480, data=bytes(size)))
        time.sleep(0.1)
    time.sleep(1.0)
node.destroy_node()
rclpy.shutdown()
"""


def dds_env(profile: Path | None) -> dict[str, str]:
    """This process's environment for a child process using Fast DDS's default profile (None) or the XML
    ``profile`` (exported as the README says; the QoS in code still applies)."""
    env = dict(os.environ)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    if profile is not None:
        env.update(FASTRTPS_DEFAULT_PROFILES_FILE=str(profile), RMW_FASTRTPS_USE_QOS_FROM_XML="0")
    return env


def delivered(profile: Path | None) -> int:
    env = dict(dds_env(profile), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", "77")
    sub = subprocess.Popen(
        [sys.executable, "-c", ROLE, "sub", "20", str(FRAMES)], env=env, stdout=subprocess.PIPE, text=True
    )
    subprocess.run(
        [sys.executable, "-c", ROLE, "pub", ",".join(map(str, SIZES)), str(FRAMES)],
        env=env,
        check=True,
        capture_output=True,
    )
    out, _ = sub.communicate(timeout=90)
    return int(out.strip().splitlines()[-1])


def main() -> None:
    for name, profile in (("default", None), ("large_messages", PROFILE)):
        start = time.perf_counter()
        count = delivered(profile)
        print(
            json.dumps(
                {
                    "bench": f"best_effort_frames_delivered_{name}",
                    "value": round(count / FRAMES, 3),
                    "unit": "fraction",
                    "frames": FRAMES,
                    "bytes": list(SIZES),
                    "rate_hz": 10,
                    "profile": None if profile is None else str(profile.relative_to(REPO)),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
