"""What both SASL sides agree on (RFC 6120 §6): the failure conditions, the
mechanisms in order of preference, and the TLS channel's binding data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from OpenSSL import SSL

CONDITIONS = frozenset(
    {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
)

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"


@dataclass(frozen=True, slots=True)
class ChannelBinding:
    """The TLS channel's binding data, which SCRAM-*-PLUS ties the authentication to."""

    type: str  # 'tls-exporter' or 'tls-unique'
    data: bytes


def channel_binding(connection: SSL.Connection, *, client: bool) -> ChannelBinding | None:
    """tls-exporter under TLS 1.3 (RFC 9266), tls-unique under TLS 1.2 (RFC 5929).

    tls-unique is the first Finished of the handshake, the client's: our own on
    the client side, the peer's on the server (sessions are off there, so every
    handshake is full)."""
    version = connection.get_protocol_version_name()
    if version == "TLSv1.3":
        return ChannelBinding("tls-exporter", connection.export_keying_material(EXPORTER_LABEL, 32))
    if version == "TLSv1.2":
        finished = connection.get_finished() if client else connection.get_peer_finished()
        if finished:
            return ChannelBinding("tls-unique", finished)
    return None


def server_mechanisms(tls: bool, channel_binding: ChannelBinding | None, plain_allowed: bool = True) -> list[str]:
    """Mechanisms to offer, best first: -PLUS only with binding data, PLAIN only under TLS.

    The client prefers them in the same order."""
    scram = ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    plus = [f"{name}-PLUS" for name in scram] if channel_binding is not None else []
    return plus + scram + (["PLAIN"] if tls and plain_allowed else [])
