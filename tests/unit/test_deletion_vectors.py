"""The deletion-vector encoding, against the specifications' own examples.

Reading the vectors back through delta-rs is tested in ``test_delta.py``.
"""

from __future__ import annotations

import struct

import numpy as np

from datacloud.delta.dv_writer import descriptor, serialize, z85


def test_z85_encodes_the_zeromq_rfc_example() -> None:
    # ZeroMQ RFC 32/Z85: these 8 bytes are "HelloWorld"
    assert z85(bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])) == "HelloWorld"


def test_z85_pads_to_four_bytes() -> None:
    assert z85(b"\x86\x4f\xd2") == z85(b"\x86\x4f\xd2\x00")


def test_a_roaring_bitmap_array_has_the_protocols_layout() -> None:
    data = serialize(np.array([3, 1, 70_000, 1]))  # unsorted, repeated: a set
    magic, count, high = struct.unpack_from("<iqi", data)
    assert (magic, count, high) == (1681511377, 1, 0)
    cookie, containers = struct.unpack_from("<II", data, 16)
    assert (cookie, containers) == (12346, 2)  # no run containers; keys 0 and 1
    keys = struct.unpack_from("<HHHH", data, 24)
    assert keys == (0, 1, 1, 0)  # key 0 holds 2 values (count-1 = 1), key 1 holds 1
    offsets = struct.unpack_from("<II", data, 32)  # from the cookie, which is at byte 16
    assert struct.unpack_from("<HH", data, 16 + offsets[0]) == (1, 3)
    assert struct.unpack_from("<H", data, 16 + offsets[1]) == (70_000 - 65_536,)


def test_a_dense_range_becomes_a_bitmap_container() -> None:
    data = serialize(np.arange(5_000))
    assert len(data) == 16 + 8 + 4 + 4 + 8192  # headers, one offset, 65,536 bits


def test_the_descriptor_is_inline_and_deterministic() -> None:
    d = descriptor(np.array([9, 2, 2]))
    assert (d["storageType"], d["cardinality"]) == ("i", 2)
    assert d["sizeInBytes"] == len(serialize(np.array([2, 9])))
    assert d == descriptor(np.array([2, 9]))
