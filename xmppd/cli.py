"""xmppctl: manage a node's accounts with the node's own configuration.

    xmppctl -c xmppd.toml adduser user@domain PASSWORD
    xmppctl --data-dir DIR --init adduser user@domain PASSWORD   (a new database)
    xmppctl --data-dir DIR passwd user@domain PASSWORD
    xmppctl --data-dir DIR deluser user@domain
    xmppctl --data-dir DIR disable user@domain      (and enable)
    xmppctl --data-dir DIR list [domain]
    xmppctl --redis URL cluster                     (the nodes, their liveness and sessions)
    xmppctl --redis URL rooms                       (MUC rooms: owner node, occupants, persistence)
    xmppctl --redis URL room destroy ROOM [REASON]
    xmppctl sessions                                (JID, node, address, since, TLS, SASL mechanism)
    xmppctl kick JID                                (a bare JID: all its sessions)
    xmppctl drain NODE                              (before maintenance: docs/operations.md)
    xmppctl reload [--node NODE] [--dry-run]        (configuration changes without a restart)
    xmppctl export FILE|-                           (XEP-0227: accounts, rosters, ..., MUC rooms)
    xmppctl import [--dry-run] [--replace] PATH...  (XEP-0227 files: ours, Prosody's, ejabberd's)

sessions, kick, drain and reload call the nodes' HTTP listeners with http_token (from -c
); with --redis, every live node of the cluster, else the node the
configuration describes.

Against a cluster (--redis), passwd, disable and deluser also end the account's
live sessions on every node. Without --init, xmppctl only opens a SQLite database
that exists: run from the wrong directory it would otherwise start an empty one the
server never reads. Errors are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from redis.exceptions import RedisError
from twisted.words.protocols.jabber import jid

from xmppd import config as cfg
from xmppd import reloadctl
from xmppd.cluster.membership import survey
from xmppd.cluster.redis import end_sessions, forget_account
from xmppd.migrate import command as migrate
from xmppd.muc.roomctl import destroy_room, survey_rooms
from xmppd.protocol.scram import Credentials
from xmppd.storage import DATABASE_FILENAME, open_storage
from xmppd.storage.interfaces import AccountExists, AccountNotFound, StorageError
from xmppd.storage.redis import redis_client
from xmppd.web.remote import Endpoint, RemoteError, call, endpoint_of


class CommandError(Exception):
    pass


def _account(config: cfg.Config, address: str) -> tuple[str, str]:
    try:
        parsed = jid.JID(address)
    except (jid.InvalidFormat, UnicodeError):
        raise CommandError(f"{address!r} is not a valid JID") from None
    if not parsed.user or parsed.resource:
        raise CommandError(f"{address!r} is not a bare JID (user@domain)")
    if parsed.host not in config.domains:
        raise CommandError(f"{parsed.host} is not served here (domains: {', '.join(config.domains)})")
    return parsed.user, parsed.host


def _password(value: str) -> str:
    if not value:
        raise CommandError("the password must not be empty")
    return value


async def _ask_cluster(config: cfg.Config, command: str, ask):
    """``ask(redis)`` against the cluster's Redis, failures as one line."""
    if not config.redis_url:
        raise CommandError(f"{command}: give the cluster's Redis (--redis URL or redis_url in the configuration)")
    client = redis_client(config.redis_url)
    try:
        return await ask(client)
    except RedisError as e:
        raise CommandError(f"{command}: cannot reach Redis: {e}") from None
    finally:
        await client.aclose()


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


async def cluster_table(config: cfg.Config) -> str:
    nodes = await _ask_cluster(config, "cluster", survey)
    rows = [("NODE", "STATE", "HEARTBEAT", "SESSIONS", "HOST")]
    for n in nodes:
        beat = f"{n.heartbeat_age:.1f}s ago" if n.heartbeat_age is not None else "expired"
        rows.append((n.node_id, "alive" if n.alive else "dead", beat, str(n.sessions), n.host))
    return _table(rows)


async def rooms_table(config: cfg.Config) -> str:
    rooms = await _ask_cluster(config, "rooms", survey_rooms)
    rows = [("ROOM", "OWNER", "PERSISTENT", "OCCUPANTS")]
    for r in rooms:
        rows.append((r.jid, r.owner, "yes" if r.persistent else "no", f"{len(r.occupants)} {' '.join(r.occupants)}".rstrip()))
    return _table(rows)


async def room_destroy(config: cfg.Config, room: str, reason: str) -> str:
    try:
        parsed = jid.JID(room)
    except (jid.InvalidFormat, UnicodeError):
        raise CommandError(f"{room!r} is not a valid room JID") from None
    if not parsed.user or parsed.resource or parsed.host not in config.muc_hosts:
        raise CommandError(f"{room!r} is not a room of this server's MUC services ({', '.join(config.muc_hosts)})")
    owner = await _ask_cluster(config, "room destroy", lambda redis: destroy_room(redis, parsed.full(), reason))
    if owner is not None:
        return f"asked {owner} to destroy {parsed.full()}"
    return await _destroy_stored(config, parsed.full())


async def _destroy_stored(config: cfg.Config, room: str) -> str:
    """A room no node runs (persistent, nobody in it since): out of the store, with a token of its
    own so that a node that has just taken it over writes no more."""
    storage = open_storage(None, config.redis_url)
    try:
        if await storage.rooms.load(room) is None or not await storage.rooms.delete(room, await storage.rooms.advance(room)):
            raise CommandError(f"no such room: {room}")
    finally:
        await storage.close()
    return f"destroyed {room} (stored; no node ran it)"


async def _end_sessions(config: cfg.Config, user: str, host: str, condition: str, text: str, deleted: bool = False) -> str:
    """A running cluster ends the account's sessions (a lone node's xmppctl has no way to it);
    a deleted account's cluster keys go too."""
    if not config.redis_url:
        return ""
    client = redis_client(config.redis_url)
    try:
        if deleted:
            await forget_account(client, f"{user}@{host}")
        nodes = await end_sessions(client, f"{user}@{host}", condition, text)
    finally:
        await client.aclose()
    return f"; its sessions on {nodes} running node(s) were ended" if nodes else ""


async def _endpoints(config: cfg.Config, command: str) -> list[Endpoint]:
    """The live nodes' HTTP listeners (a cluster's, from Redis), or the configured node's."""
    if not config.http_token:
        raise CommandError(f"{command}: give the nodes' http_token in the configuration (-c)")
    if not config.redis_url:
        return [endpoint_of(config.node_id, config.http_interface, config.http_port)]
    nodes = await _ask_cluster(config, command, survey)
    return [Endpoint(n.node_id, n.http) for n in nodes if n.alive and n.http]


async def sessions_table(config: cfg.Config) -> str:
    endpoints = await _endpoints(config, "sessions")
    answers = await asyncio.gather(*(call(e, config.http_token, "sessions") for e in endpoints))
    rows = [("JID", "NODE", "ADDRESS", "SINCE", "TLS", "MECHANISM")]
    for answer in answers:
        for s in answer["sessions"]:
            rows.append((s["jid"], s["node"], s["address"], s["since"], "yes" if s["tls"] else "no", s["mechanism"] or ""))
    return _table(rows)


async def kick(config: cfg.Config, address: str) -> str:
    try:
        parsed = jid.JID(address)
    except (jid.InvalidFormat, UnicodeError):
        raise CommandError(f"{address!r} is not a valid JID") from None
    endpoints = await _endpoints(config, "kick")
    answers = await asyncio.gather(*(call(e, config.http_token, "kick", {"jid": parsed.full()}) for e in endpoints))
    kicked = sum(a["kicked"] for a in answers)
    if not kicked:
        raise CommandError(f"no session of {parsed.full()}")
    return f"ended {kicked} session(s) of {parsed.full()}"


async def drain(config: cfg.Config, node_id: str) -> str:
    endpoints = {e.node_id: e for e in await _endpoints(config, "drain")}
    if node_id not in endpoints:
        raise CommandError(f"drain: no live node {node_id!r} (nodes: {', '.join(sorted(endpoints)) or 'none'})")
    answer = await call(endpoints[node_id], config.http_token, "drain", {})
    how = f"see-other-host {config.drain_redirect}" if config.drain_redirect else "system-shutdown"
    rooms = ", then its MUC rooms move to the other nodes" if config.redis_url else ""
    return f"draining {answer['node']}: not ready; {answer['sessions']} client connection(s) to close ({how}){rooms}"


def _refuse_a_new_database(config: cfg.Config, init: bool) -> None:
    database = config.data_dir / DATABASE_FILENAME
    if not config.redis_url and not init and not database.exists():
        raise CommandError(
            f"no database in {config.data_dir.resolve()}: give the server's data directory "
            "(--data-dir, or -c with its configuration), or --init to create one there"
        )


async def run(args: argparse.Namespace, config: cfg.Config) -> str:
    if args.command == "cluster":
        return await cluster_table(config)
    if args.command == "rooms":
        return await rooms_table(config)
    if args.command == "room":
        return await room_destroy(config, args.room, args.reason)
    if args.command == "sessions":
        return await sessions_table(config)
    if args.command == "kick":
        return await kick(config, args.jid)
    if args.command == "drain":
        return await drain(config, args.node)
    if args.command == "reload":
        return await reloadctl.run(await _endpoints(config, "reload"), config.http_token, args)
    _refuse_a_new_database(config, args.init)
    storage = open_storage(config.data_dir, config.redis_url or None)
    accounts = storage.accounts
    try:
        if args.command in migrate.COMMANDS:
            return await migrate.run(args, storage, config)
        if args.command == "adduser":
            user, host = _account(config, args.jid)
            await accounts.create(user, host, Credentials.from_password(_password(args.password), config.scram_iterations))
            return f"created {user}@{host}"
        if args.command == "passwd":
            user, host = _account(config, args.jid)
            await accounts.set_credentials(user, host, Credentials.from_password(_password(args.password), config.scram_iterations))
            return f"password changed for {user}@{host}" + await _end_sessions(config, user, host, "reset", "the password changed")
        if args.command in ("disable", "enable"):
            user, host = _account(config, args.jid)
            await accounts.set_disabled(user, host, args.command == "disable")
            ended = await _end_sessions(config, user, host, "not-authorized", "account disabled") if args.command == "disable" else ""
            return f"{args.command}d {user}@{host}" + ended
        if args.command == "deluser":
            user, host = _account(config, args.jid)
            if not await storage.delete_account(user, host):
                raise CommandError(f"no such account: {user}@{host}")
            return f"deleted {user}@{host}" + await _end_sessions(config, user, host, "not-authorized", "account removed", deleted=True)
        return "\n".join(await accounts.list(args.domain))
    finally:
        await storage.close()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xmppctl", description="Manage an xmppd node.")
    cfg.add_arguments(p)
    p.add_argument("--init", action="store_true", help="create the SQLite database in the data directory if there is none")
    commands = p.add_subparsers(dest="command", required=True)
    add = commands.add_parser("adduser", help="create an account")
    add.add_argument("jid")
    add.add_argument("password")
    passwd = commands.add_parser("passwd", help="change an account's password")
    passwd.add_argument("jid")
    passwd.add_argument("password")
    delete = commands.add_parser("deluser", help="delete an account")
    delete.add_argument("jid")
    for name, doc in (("disable", "lock an account (logins fail with account-disabled)"), ("enable", "unlock an account")):
        commands.add_parser(name, help=doc).add_argument("jid")
    listing = commands.add_parser("list", help="list accounts")
    listing.add_argument("domain", nargs="?")
    commands.add_parser("cluster", help="the cluster's nodes: liveness, heartbeat age, sessions")
    commands.add_parser("rooms", help="the cluster's MUC rooms: owner node, persistence, occupants")
    room = commands.add_parser("room", help="act on one MUC room").add_subparsers(dest="action", required=True)
    destroy = room.add_parser("destroy", help="destroy a room: its occupants are told, as when an owner destroys it")
    destroy.add_argument("room")
    destroy.add_argument("reason", nargs="?", default="destroyed by the operator")
    commands.add_parser("sessions", help="client sessions on every node: JID, node, address, since, TLS, SASL mechanism")
    commands.add_parser("kick", help="end a JID's sessions (a bare JID: all of them)").add_argument("jid")
    drain_parser = commands.add_parser("drain", help="take a node out of service: not ready, sessions closed at drain_rate, rooms moved")
    drain_parser.add_argument("node")
    reloadctl.add_parser(commands)
    migrate.add_parsers(commands)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides = {o.name: getattr(args, o.name, None) for o in cfg.SCHEMA if o.cli}
    try:
        config = cfg.load(args.config, overrides)
        output = asyncio.run(run(args, config))
    except AccountExists as e:
        print(f"xmppctl: account already exists: {e}", file=sys.stderr)
        return 1
    except AccountNotFound as e:
        print(f"xmppctl: no such account: {e}", file=sys.stderr)
        return 1
    except (cfg.ConfigError, CommandError, StorageError, RemoteError, reloadctl.ReloadFailed, migrate.MigrateError) as e:
        print(f"xmppctl: {e}", file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
