"""config/fastdds_large_messages.xml (#20): a Fast DDS profile every participant picks up by default,
whose user transports are the ones it defines, with a shared-memory segment that holds a raw 640x480
RGB-D frame many times over. (Delivery with and without it: bench/large_messages.py.)"""

import xml.etree.ElementTree as ET
from pathlib import Path

NS = {"dds": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
PROFILE = Path(__file__).resolve().parent.parent / "config" / "fastdds_large_messages.xml"
RGBD_640X480_BYTES = 640 * 480 * (3 + 4)


def test_profile_is_default_and_its_transports_are_defined():
    root = ET.parse(PROFILE).getroot()
    defined = {
        d.findtext("dds:transport_id", namespaces=NS): d for d in root.iterfind(".//dds:transport_descriptor", NS)
    }
    (participant,) = root.iterfind(".//dds:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.iterfind("dds:rtps/dds:userTransports/dds:transport_id", NS)]
    assert used and set(used) == set(defined)
    assert participant.findtext("dds:rtps/dds:useBuiltinTransports", namespaces=NS) == "false"
    kinds = {d.findtext("dds:type", namespaces=NS): d for d in defined.values()}
    assert set(kinds) == {"SHM", "UDPv4"}
    assert int(kinds["SHM"].findtext("dds:segment_size", namespaces=NS)) >= 10 * RGBD_640X480_BYTES
    (writer,) = root.iterfind(".//dds:data_writer", NS)
    assert writer.get("is_default_profile") == "true"
    assert writer.findtext("dds:qos/dds:publishMode/dds:kind", namespaces=NS) == "ASYNCHRONOUS"
