"""A Redis connection of one's own, for the node bus's hot path.

redis-py's pipelines, pool checkouts and retry wrappers cost more CPU than the
XADD or XREADGROUP they carry (about half of a node's time in the cluster
benchmark), and so does its command packer (~100k instructions for one
XREADGROUP, under callgrind). The bus has exactly one writer and one reader
task, so each gets a lane: one connection, commands packed here and written at
once, replies read in order. A failure drops the connection; the next call
opens a new one.
"""

from __future__ import annotations


def packed(*args: bytes | str | int) -> bytes:
    """One command as RESP, byte for byte what redis-py sends for these arguments."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class Lane:
    def __init__(self, redis):
        self._pool = redis.connection_pool
        self._connection = None

    async def call(self, *commands: tuple | bytes) -> list:
        """Send the commands (argument tuples, or bytes from ``packed``) in one write; their
        replies, in order (an error reply raises)."""
        if self._connection is None:
            self._connection = await self._pool.get_connection()
        connection = self._connection
        try:
            await connection.send_packed_command(b"".join(c if isinstance(c, bytes) else packed(*c) for c in commands), check_health=False)
            return [await connection.read_response() for _ in commands]
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()
            await self._pool.release(connection)
