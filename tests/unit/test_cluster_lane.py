"""The node bus's own command packer against redis-py's, which it replaces on the hot path."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection

from xmppd.cluster.lane import packed


@pytest.mark.parametrize("command", [
    ("XADD", "xmppd:cluster:node:n2:bus", "*", 0, b"f" + "é@localhost/r".encode() + b"\0<message/>", 1, b""),
    ("XREADGROUP", "GROUP", "bus", "n1", "COUNT", 128, "BLOCK", 1000, "NOACK", "STREAMS", "xmppd:cluster:node:n1:bus", ">"),
    ("XTRIM", "key", "MINID", b"1765138000123-0"),
])  # fmt: skip
def test_a_command_is_packed_as_redis_py_packs_it(command):
    assert packed(*command) == b"".join(Connection().pack_commands([command]))
