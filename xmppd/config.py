"""The node's options: declared once, typed, bounded, documented.

Every option lives in ``SCHEMA``. The TOML file, the command-line overrides of
``twistd xmppd`` and ``xmppctl``, and the README's option table all come from
it. A bad value raises ``ConfigError`` with one line that names the option.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.words.protocols.jabber import jid

from xmppd.protocol.xml import DEEPEST


class ConfigError(Exception):
    """A user error in the configuration: printed as one line, no traceback."""


# When a changed value takes effect on ``xmppctl reload`` / SIGHUP (xmppd/reload.py); "" = at a restart.
LIVE = "yes"  # at once: read where it is used, or applied by the reload
NEW_STREAMS = "new streams"  # for connections made after the reload; open ones keep the value they started with


@dataclass(frozen=True)
class Option:
    name: str
    type: type  # int, str, bool, list (of str), dict (str -> str: a TOML table), Path
    default: Any
    doc: str
    min: int | None = None
    max: int | None = None
    cli: bool | str = False  # offered on the command line (a str names the flag)
    choices: tuple[str, ...] = ()  # the only values a str option takes, when given
    reload: str = ""  # LIVE, NEW_STREAMS, or "": a change waits for a restart
    secret: bool = False  # its value is never shown (reload reports name the option only)

    @property
    def flag(self) -> str:
        return "--" + (self.cli if isinstance(self.cli, str) else self.name.replace("_", "-"))

    def check(self, value: Any, origin: str) -> Any:
        """Return the value converted to the option's type, or raise ConfigError."""
        where = f"{origin}: option '{self.name}'"
        if self.type is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                value = value.lower() in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true or false, got {value!r}")
            return value
        if self.type is int:
            if isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}: expected an integer, got {value!r}")
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise ConfigError(f"{where}: {value} is out of bounds [{self.min}, {self.max}]")
            return value
        if self.type is list:
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
            if self.min is not None and len(value) < self.min:
                raise ConfigError(f"{where}: needs at least {self.min} item(s)")
            return value
        if self.type is dict:  # its values may be secrets: never echoed
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise ConfigError(f"{where}: expected a table of quoted names and strings")
            if self.max is not None and len(value) > self.max:
                raise ConfigError(f"{where}: at most {self.max} entries")
            return dict(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        if value and ((self.min is not None and len(value) < self.min) or (self.max is not None and len(value) > self.max)):
            raise ConfigError(f"{where}: {len(value)} characters, expected {self.min} to {self.max}")  # never echoed: it may be a secret
        if self.choices and value not in self.choices:
            raise ConfigError(f"{where}: expected one of {', '.join(self.choices)}, got {value!r}")
        return Path(value) if self.type is Path else value


def _default_node_id(c2s_port: int) -> str:
    """Host name and port: unique for one node per core on a machine, stable across restarts."""
    return f"{socket.gethostname()}:{c2s_port}"


SCHEMA: tuple[Option, ...] = (
    Option("domains", list, ["localhost"], "XMPP domains (virtual hosts) served by this node (comma-separated on the command line)", min=1, cli="domain"),
    Option("data_dir", Path, Path("xmppd-data"), "directory for the SQLite database and generated certificates", cli=True),
    Option("c2s_interface", str, "0.0.0.0", "address the client listeners bind to", cli=True),
    Option("c2s_port", int, 5222, "client port (STARTTLS); 0 picks a free port", min=0, max=65535, cli=True),
    Option("c2s_direct_tls", bool, False, "also listen for clients that start with TLS (XEP-0368)", cli=True),
    Option("c2s_direct_tls_port", int, 5223, "port of the direct-TLS listener; 0 picks a free port", min=0, max=65535, cli=True),
    Option("tls_cert", str, "", "PEM certificate chain; empty = a self-signed ECDSA P-256 certificate in data_dir", cli=True, reload=NEW_STREAMS),
    Option("tls_key", str, "", "PEM private key for tls_cert", cli=True, reload=NEW_STREAMS),
    Option("tls_required", bool, True, "refuse authentication on streams without TLS", reload=LIVE),
    Option("registration", bool, False, "allow in-band registration (XEP-0077)", cli=True, reload=LIVE),
    Option("registrations_per_stream", int, 1, "accounts one stream may register; more get not-allowed", min=1, max=100, reload=LIVE),
    Option("registration_interval", int, 600, "seconds before an address may register another account on this node (resource-constraint before; behind a balancer all share one address); 0 = no limit", min=0, max=86400, reload=LIVE),
    Option("scram_iterations", int, 4096, "PBKDF2 iterations for new SCRAM credentials", min=4096, max=1_000_000, reload=LIVE),
    Option("max_password_bytes", int, 1023, "longest password accepted by SASL PLAIN and in-band registration, in UTF-8 bytes, checked before SASLprep (malformed-request, not-acceptable)", min=64, max=65536, reload=LIVE),
    Option("max_stanza_size", int, 262144, "largest stanza accepted, in bytes (policy-violation above)", min=10000, max=16 * 1024 * 1024, reload=NEW_STREAMS),
    Option("address_cache_mb", int, 4, "megabytes each cache of prepared addresses (stringprep results, parsed JIDs; five in all) may hold; the least recently used go first", min=1, max=1024, reload=LIVE),
    Option("max_stanza_depth", int, 32, "deepest nesting of elements in a stanza, the stanza being level 1 (policy-violation above); real ones, even a MAM result forwarding an XHTML-IM message, stay near 10", min=8, max=DEEPEST, reload=NEW_STREAMS),
    Option("max_auth_failures", int, 3, "failed SASL attempts per stream before policy-violation", min=1, max=10, reload=LIVE),
    Option("max_bind_attempts", int, 5, "failed resource bindings per stream before policy-violation", min=1, max=10, reload=LIVE),
    Option("max_resources", int, 10, "concurrent resources per account", min=1, max=1000, reload=LIVE),
    Option("max_directed_presences", int, 500, "entities one resource may send directed presence to at once (PRES-06); more get resource-constraint", min=1, max=100_000, reload=LIVE),
    Option("last_unavailable_cache_kb", int, 4096, "kilobytes of accounts' last unavailable presence a node alone keeps, to answer probes for offline accounts with it and a delay stamp (PRES-09); the least recently used go first; 0 = a bare unavailable. A cluster keeps one per account in Redis instead", min=0, max=1024 * 1024, reload=LIVE),
    Option("roster_max_items", int, 1000, "items per roster, and subscription requests waiting per account (IM-08); more: roster set not-acceptable, subscription stanzas resource-constraint", min=1, max=100_000, reload=LIVE),
    Option("roster_max_groups", int, 20, "groups per roster item (not-acceptable above)", min=1, max=1000, reload=LIVE),
    Option("roster_max_text", int, 1023, "longest roster item name or group, in characters (not-acceptable above)", min=1, max=1023, reload=LIVE),
    Option("privacy_max_lists", int, 10, "privacy lists per account (XEP-0016); more get resource-constraint", min=1, max=1000, reload=LIVE),
    Option("privacy_max_items", int, 250, "items per privacy list, blocklist included (XEP-0016/0191); more get not-acceptable", min=1, max=100_000, reload=LIVE),
    Option("offline_quota", int, 1000, "offline messages kept per account (XEP-0160); more get service-unavailable", min=0, max=100_000, reload=LIVE),
    Option("offline_quota_bytes", int, 5 * 1024 * 1024, "bytes of offline messages kept per account; a message that would pass it gets service-unavailable", min=0, max=1024**3, reload=LIVE),
    Option("offline_page_bytes", int, 256 * 1024, "offline messages go out at login in pages of this many bytes (one message more at most), each written before the next is read", min=1024, max=16 * 1024 * 1024, reload=LIVE),
    Option("pep_max_nodes", int, 64, "PEP nodes one account may have (XEP-0163); publishing to one more gets not-allowed", min=1, max=10_000, reload=LIVE),
    Option("pep_max_item_size", int, 131072, "largest PEP item stored, in bytes (not-acceptable + payload-too-big above)", min=1024, max=16 * 1024 * 1024, reload=LIVE),
    Option("pep_max_node_name", int, 1024, "longest PEP node name, in bytes (not-acceptable above)", min=64, max=65536, reload=LIVE),
    Option("pep_max_subscribers", int, 1000, "explicit subscribers one PEP node may have (presence-based ones are not counted); more get policy-violation", min=1, max=1_000_000, reload=LIVE),
    Option("pep_max_affiliations", int, 1000, "members and outcasts one PEP node may have (XEP-0060 affiliations; the whitelist model admits members); more get policy-violation", min=1, max=1_000_000, reload=LIVE),
    Option("pep_max_items", int, 32, "most items a PEP node may be configured to keep (the default is 1, as XEP-0163 says)", min=1, max=1000, reload=LIVE),
    Option("pep_remote_resources", int, 100_000, "resources of other domains whose presence (and so caps) each node keeps to send them PEP notifications (PEP-14), at most max_resources of one remote account per local account; past it, new ones are not notified until others go", min=0, max=10_000_000),
    Option("caps_max_features", int, 16384, "bytes of feature names a client's XEP-0115 answer may list to be remembered (real clients use a few KiB)", min=1024, max=1024 * 1024, reload=LIVE),
    Option("caps_cache_size", int, 10_000, "XEP-0115 ver strings whose verified features the server stores, and each node keeps in memory (the oldest goes first)", min=100, max=1_000_000),
    Option("vcard_max_size", int, 65536, "largest vCard stored, in bytes (not-acceptable above)", min=1024, max=16 * 1024 * 1024, reload=LIVE),
    Option("max_connections", int, 15000, "client connections a node accepts; when full, the one that has waited longest to authenticate makes room for a new one (idle sockets cannot lock users out); with none waiting, resource-constraint", min=1, max=1_000_000, reload=LIVE),
    Option("max_unauthenticated_per_ip", int, 20, "connections from one address that have not authenticated yet; more are refused before TLS (resource-constraint on c2s_port, a bare TCP close on the direct-TLS port); 0 = no limit. Behind a TCP balancer every client has its address: set 0 there and limit at the balancer (see ops/haproxy.cfg)", min=0, max=1_000_000, cli=True, reload=LIVE),
    Option("max_connections_per_ip", int, 1000, "authenticated connections from one address (a NAT may hide many users); more end with resource-constraint after SASL; 0 = no limit, as behind a TCP balancer", min=0, max=1_000_000, cli=True, reload=LIVE),
    Option("per_ip_exempt", list, ["127.0.0.0/8", "::1/128"], "networks whose addresses the two per-address caps above do not count: loopback by default, where every client of a local TLS terminator or balancer (or a benchmark) shares one address; empty = every address counted", cli=True, reload=LIVE),
    Option("auth_timeout", int, 10, "seconds a client has from connecting to finishing TLS and SASL, at most negotiation_timeout (connection-timeout after)", min=1, max=3600, reload=NEW_STREAMS),
    Option("negotiation_timeout", int, 30, "seconds a client has from connecting to binding a resource (connection-timeout after)", min=1, max=3600, reload=NEW_STREAMS),
    Option("max_output_buffer", int, 1024 * 1024, "bytes of output a stream may leave unread: the node stops reading from its peer above this, and ends the stream with policy-violation at twice this", min=65536, max=1024 * 1024 * 1024, reload=NEW_STREAMS),
    Option("output_stall_timeout", int, 30, "seconds a peer has, once over max_output_buffer, to read all its output before policy-violation", min=1, max=3600, reload=NEW_STREAMS),
    Option("idle_timeout", int, 300, "seconds of silence before the server pings a client", min=5, max=86400, reload=LIVE),
    Option("ping_timeout", int, 60, "seconds an idle client has to answer the ping before connection-timeout", min=1, max=3600, reload=LIVE),
    Option("closing_timeout", int, 5, "seconds the node waits for a client's </stream:stream> after closing the stream itself, then closes TCP (RFC 6120 §4.4)", min=1, max=60, reload=LIVE),
    Option("s2s", bool, False, "federate with other XMPP servers (server-to-server, RFC 6120 + XEP-0220): listen on s2s_port and route stanzas for other domains there; off by default, see docs/federation.md", cli=True),
    Option("s2s_interface", str, "0.0.0.0", "address the server-to-server listener binds to", cli=True),
    Option("s2s_port", int, 5269, "server-to-server port (STARTTLS); 0 picks a free port", min=0, max=65535, cli=True),
    Option("s2s_hosts", list, [], "static host map, overriding DNS SRV: entries 'domain=host:port' (STARTTLS) or 'domain=tls:host:port' (TLS from the first byte, XEP-0368), for split DNS, private federations, tests"),
    Option("s2s_direct_tls", bool, False, "also listen for servers that start with TLS (XEP-0368, _xmpps-server SRV records)", cli=True),
    Option("s2s_direct_tls_port", int, 5270, "port of the direct-TLS server-to-server listener; 0 picks a free port", min=0, max=65535, cli=True),
    Option("s2s_secret", str, "", "dialback secret (XEP-0185); every node of a cluster needs the same one (required with redis_url); empty on a node alone = a random one per start", secret=True),
    Option("s2s_tls_required", bool, True, "require STARTTLS on server-to-server streams, both ways", reload=LIVE),
    Option("s2s_require_valid_cert", bool, False, "accept only peers whose certificate is valid for their domain (SASL EXTERNAL; no dialback), and connect only to such peers", reload=LIVE),
    Option("s2s_ca_file", str, "", "PEM bundle of CAs trusted for peer certificates; empty = the system's trust store"),
    Option("s2s_queue_max", int, 1000, "stanzas waiting per remote domain while its stream connects; more are bounced with resource-constraint", min=1, max=1_000_000, reload=LIVE),
    Option("s2s_connect_timeout", int, 30, "seconds from the first connection attempt to an authenticated outbound stream; remote-server-timeout after", min=1, max=600, reload=LIVE),
    Option("s2s_retry_max", int, 300, "longest wait before retrying a remote domain that failed (the wait doubles from 1 s); stanzas for it meanwhile bounce at once", min=1, max=86400, reload=LIVE),
    Option("s2s_idle_timeout", int, 600, "seconds a server-to-server stream may carry nothing before it is closed", min=5, max=86400, reload=LIVE),
    Option("s2s_max_streams", int, 1000, "inbound server-to-server connections a node accepts (resource-constraint above)", min=1, max=1_000_000, reload=LIVE),
    Option("s2s_max_pending_verifications", int, 100, "dialback keys one inbound stream may have waiting for the authoritative server (policy-violation above)", min=1, max=10_000, reload=LIVE),
    Option("muc_hosts", list, ["conference.{domain}"], "multi-user chat services (XEP-0045); '{domain}' stands for each served domain; empty = no MUC"),
    Option("muc_room_locking", bool, True, "a room created by a MUC join stays locked (item-not-found to others) until its owner configures it or accepts the defaults", reload=LIVE),
    Option("muc_groupchat_1_0", bool, True, "accept MUC joins without <x xmlns='http://jabber.org/protocol/muc'/> (groupchat 1.0, XEP-0045 2008); false answers them with the kick of 110+307+333", reload=LIVE),
    Option("muc_max_rooms", int, 10000, "rooms one MUC service holds; creating more gets not-allowed", min=1, max=1_000_000, reload=LIVE),
    Option("muc_max_rooms_per_user", int, 100, "rooms one account may have created that still exist, per MUC service; more get not-allowed", min=1, max=1_000_000, reload=LIVE),
    Option("muc_max_rooms_joined", int, 250, "rooms one account may be in at once, per MUC service (each nick counts); more get not-allowed", min=1, max=100_000, reload=LIVE),
    Option("muc_invites_per_message", int, 10, "invitations and declines one message to a room may carry; more get policy-violation (the room would relay them all)", min=1, max=1000, reload=LIVE),
    Option("muc_rooms_page", int, 100, "most rooms in one disco#items answer of a MUC service; XEP-0059 <set/> pages through the rest", min=1, max=10000, reload=LIVE),
    Option("muc_max_occupants", int, 200, "occupants per room (an owner's maxusers may only lower it); more get service-unavailable, owners and admins excepted", min=1, max=100_000, reload=LIVE),
    Option("muc_max_history", int, 20, "groupchat messages a room keeps to send to newcomers (0 = none)", min=0, max=1000, reload=LIVE),
    Option("muc_history_flush_ms", int, 500, "milliseconds a room's new history messages may wait to be written to the room store together (0 = with each message); a node killed -9 loses at most this much of its rooms' history, never a delivery", min=0, max=10_000),
    Option("muc_history_size", int, 65536, "characters of XML a room's history holds at most (oldest dropped first; a larger message is not kept)", min=0, max=16 * 1024 * 1024, reload=LIVE),
    Option("muc_max_nick_length", int, 64, "longest room nickname, in characters (not-acceptable above)", min=1, max=1023, reload=LIVE),
    Option("muc_max_registrations", int, 1000, "nicks one room may have reserved (XEP-0045 registration, each registrant becoming a member); more get not-allowed", min=0, max=100_000, reload=LIVE),
    Option("muc_max_affiliations", int, 10000, "JIDs and domains one room keeps an affiliation for (owners, admins, members, outcasts); a change that would add more gets not-allowed", min=1, max=1_000_000, reload=LIVE),
    Option("muc_max_subject_length", int, 1024, "longest room subject, in characters (not-acceptable above)", min=1, max=65536, reload=LIVE),
    Option("muc_message_rate", int, 10, "messages (groupchat, private, invitations) one occupant may send a room a second on average, twice as many at once; more get policy-violation (wait)", min=1, max=10000, reload=LIVE),
    Option("muc_max_field_length", int, 1024, "longest text in a room's configuration form (its name, description, password), in characters (not-acceptable above)", min=1, max=65536, reload=LIVE),
    Option("component_listener", bool, False, "accept external components (XEP-0114) on component_port; the domains and secrets are in 'components'", cli=True),
    Option("component_interface", str, "127.0.0.1", "address the component listener binds to: components authenticate with a shared secret over plain TCP, so keep it private", cli=True),
    Option("component_port", int, 5347, "port of the component listener; 0 picks a free port", min=0, max=65535, cli=True),
    Option("components", dict, {}, "external components (XEP-0114): a TOML table of domain = \"shared secret\" (1 to 1023 characters); stanzas to a domain here go to its component, from whichever node holds its stream", max=1000, secret=True),
    Option("node_id", str, "", "this node's name in logs and the cluster (default: host name and c2s port)", cli=True),
    Option("log_level", str, "info", "least severe log events written: debug adds a line per login and binding", cli=True,
           choices=("debug", "info", "warn", "error", "critical"), reload=LIVE),
    Option("redis_url", str, "", "join the cluster of nodes sharing this Redis (redis://, rediss://, unix://, redis+sentinel://host:port[,host:port]/service[/db]); empty = one node with SQLite in data_dir", cli="redis", secret=True),
    Option("cluster_batch_ms", int, 10, "cluster: milliseconds the node bus waits to send and to read stanzas together (CPU per message vs latency)", min=0, max=100),
    Option("muc_lease_ttl", int, 2, "cluster: seconds a node's lease on a MUC room lives, renewed a third of it apart; a room whose node died moves to another within about this", min=1, max=60, cli=True),
    Option("heartbeat_ttl", int, 5, "cluster: seconds a node's heartbeat lives; survivors declare a silent node dead within twice this", min=1, max=60, cli=True),
    Option("http_interface", str, "127.0.0.1", "address of the operators' HTTP endpoints (/healthz, /readyz, /metrics, the dashboard): keep it private", cli=True),
    Option("http_port", int, 5280, "port of the operators' HTTP endpoints; 0 picks a free port", min=0, max=65535, cli=True),
    Option("http_token", str, "", "bearer token for the dashboard's data and the admin actions on the HTTP listener (sessions, kick, drain, reload); empty = they are off (404); /healthz, /readyz and /metrics stay open", min=16, max=256, reload=LIVE, secret=True),
    Option("metrics", bool, True, "serve /metrics; false: it answers 404 (the node still counts: about 0.7 % of a message's instructions, docs/operations.md)"),
    Option("drain_redirect", str, "", "host or host:port of the balancer a draining node sends its clients to (see-other-host); empty = system-shutdown", max=255, reload=LIVE),
    Option("drain_rate", int, 100, "client sessions a draining node closes per second", min=1, max=100_000, reload=LIVE),
)

OPTIONS = {o.name: o for o in SCHEMA}


@dataclass
class Config:
    """Validated options; attribute access by option name."""

    values: dict[str, Any] = field(default_factory=dict)
    source: str = "defaults"
    path: Path | None = None  # the file it was read from, read again by a reload
    overrides: dict[str, Any] = field(default_factory=dict)  # the command line's, which a reload keeps

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def uses_generated_certificate(self) -> bool:
        return not self.tls_cert


def _validate_domains(domains: list[str], origin: str) -> list[str]:
    prepared = []
    for domain in domains:
        try:
            parsed = jid.JID(domain)
        except jid.InvalidFormat:
            raise ConfigError(f"{origin}: option 'domains': {domain!r} is not a valid domain") from None
        if parsed.user or parsed.resource:
            raise ConfigError(f"{origin}: option 'domains': {domain!r} is a JID, not a domain")
        prepared.append(parsed.host)
    return prepared


MAX_SECRET = 1023  # characters of a component's shared secret


def _validate_components(components: dict[str, str], taken: list[str], origin: str) -> dict[str, str]:
    """Each component's domain is one of its own (not served, not a MUC host), its secret not empty."""
    prepared: dict[str, str] = {}
    for domain, secret in components.items():
        try:
            parsed = jid.JID(domain)
        except (jid.InvalidFormat, UnicodeError):
            raise ConfigError(f"{origin}: option 'components': {domain!r} is not a valid domain") from None
        if parsed.user or parsed.resource or parsed.host in taken or parsed.host in prepared:
            raise ConfigError(f"{origin}: option 'components': {domain!r} must be a domain of its own, named once")
        if not 1 <= len(secret) <= MAX_SECRET:
            raise ConfigError(f"{origin}: option 'components': the secret of {domain!r} must have 1 to {MAX_SECRET} characters")
        prepared[parsed.host] = secret
    return prepared


def _expand_muc_hosts(patterns: list[str], domains: list[str], origin: str) -> list[str]:
    """'{domain}' in a MUC host stands for each served domain; a host is a domain of its own."""
    hosts: list[str] = []
    for pattern in patterns:
        for host in dict.fromkeys(pattern.replace("{domain}", domain) for domain in domains):
            try:
                parsed = jid.JID(host)
            except jid.InvalidFormat:
                raise ConfigError(f"{origin}: option 'muc_hosts': {host!r} is not a valid domain") from None
            if parsed.user or parsed.resource or parsed.host in domains or parsed.host in hosts:
                raise ConfigError(f"{origin}: option 'muc_hosts': {host!r} must be a domain of its own, named once")
            hosts.append(parsed.host)
    return hosts


def _parse_networks(entries: list[str], origin: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
    except ValueError as e:
        raise ConfigError(f"{origin}: option 'per_ip_exempt': {e}") from None


def _parse_host_map(entries: list[str], origin: str) -> dict[str, tuple[str, int, bool]]:
    """'domain=host:port' and 'domain=tls:host:port' entries of s2s_hosts: (host, port, direct TLS) by prepared domain."""
    hosts: dict[str, tuple[str, int, bool]] = {}
    for entry in entries:
        domain, _, address = entry.partition("=")
        direct_tls = address.startswith("tls:")
        host, _, port = address.removeprefix("tls:").rpartition(":")
        try:
            prepared, number = jid.JID(domain.strip()), int(port)
        except (jid.InvalidFormat, UnicodeError, ValueError):
            prepared, number = None, 0
        if prepared is None or prepared.user or prepared.resource or not host.strip() or not 0 < number < 65536:
            raise ConfigError(f"{origin}: option 's2s_hosts': expected 'domain=host:port' or 'domain=tls:host:port', got {entry!r}")
        hosts[prepared.host] = (host.strip().strip("[]"), number, direct_tls)
    return hosts


def _check_cross_option_rules(values: dict[str, Any], origin: str) -> None:
    if bool(values["tls_cert"]) != bool(values["tls_key"]):
        raise ConfigError(f"{origin}: options 'tls_cert' and 'tls_key' must be given together")
    for name in ("tls_cert", "tls_key"):
        if values[name] and not Path(values[name]).is_file():
            raise ConfigError(f"{origin}: option '{name}': cannot read {values[name]!r}")
    if values["s2s"] and values["redis_url"] and not values["s2s_secret"]:
        raise ConfigError(f"{origin}: option 's2s_secret': every node of a cluster needs the same dialback secret")
    if values["s2s_ca_file"] and not Path(values["s2s_ca_file"]).is_file():
        raise ConfigError(f"{origin}: option 's2s_ca_file': cannot read {values['s2s_ca_file']!r}")
    if values["redis_url"] and values["redis_url"].split("://", 1)[0] not in ("redis", "rediss", "unix", "redis+sentinel"):
        raise ConfigError(
            f"{origin}: option 'redis_url': expected redis://, rediss://, unix:// or redis+sentinel://, got {values['redis_url']!r}"
        )
    if values["component_listener"] and not values["components"]:
        raise ConfigError(f"{origin}: option 'component_listener': no components to accept; name them in a [components] table")


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file, then command-line overrides; validated."""
    values = {o.name: o.default for o in SCHEMA}
    origin = "defaults"
    if path is not None:
        origin = str(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"{origin}: cannot read the configuration file: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{origin}: not valid TOML: {e}") from None
        for key, value in data.items():
            if key not in OPTIONS:
                raise ConfigError(f"{origin}: unknown option '{key}'")
            values[key] = OPTIONS[key].check(value, origin)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = OPTIONS[key].check(value, "command line")
    values["domains"] = _validate_domains(values["domains"], origin)
    values["muc_hosts"] = _expand_muc_hosts(values["muc_hosts"], values["domains"], origin)
    values["s2s_hosts"] = _parse_host_map(values["s2s_hosts"], origin)
    values["per_ip_exempt"] = _parse_networks(values["per_ip_exempt"], origin)
    if not values["node_id"]:
        values["node_id"] = _default_node_id(values["c2s_port"])
    values["components"] = _validate_components(values["components"], values["domains"] + values["muc_hosts"], origin)
    _check_cross_option_rules(values, origin)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    return Config(values, origin, None if path is None else Path(path).absolute(), given)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The common overrides, for argparse-based commands (xmppctl)."""
    parser.add_argument("-c", "--config", help="TOML configuration file")
    for option in SCHEMA:
        if not option.cli:
            continue
        if option.type is bool:
            parser.add_argument(option.flag, dest=option.name, action="store_true", default=None, help=option.doc)
        else:
            parser.add_argument(option.flag, dest=option.name, default=None, help=option.doc)


def markdown_table() -> str:
    """The README's option table, generated from the schema."""
    rows = ["| option | command line | type | default | bounds | reload | meaning |", "|---|---|---|---|---|---|---|"]
    for o in SCHEMA:
        bounds = "" if o.min is None and o.max is None else f"{o.min if o.min is not None else ''}..{o.max if o.max is not None else ''}"
        bounds = bounds or ", ".join(o.choices)
        default = ", ".join(o.default) if o.type in (list, dict) else str(o.default).lower() if o.type is bool else str(o.default)
        kind = {Path: "path", dict: "table"}.get(o.type, o.type.__name__)
        rows.append(
            f"| `{o.name}` | {'`' + o.flag + '`' if o.cli else ''} | {kind} "
            f"| `{default}` | {bounds} | {o.reload} | {o.doc} |"
        )
    return "\n".join(rows)


START, END = "<!-- options:", "<!-- /options -->"


def update_readme(path: Path) -> None:
    """Rewrite the option table between the README's markers."""
    text = path.read_text()
    start = text.index("-->", text.index(START)) + 3
    path.write_text(text[:start] + "\n" + markdown_table() + "\n" + text[text.index(END) :])


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--update"]:
        update_readme(Path(sys.argv[2]))
    else:
        print(markdown_table())
