"""xmppctl: manage a node's accounts with the node's own configuration.

    xmppctl -c xmppd.toml adduser user@domain PASSWORD
    xmppctl --data-dir DIR --init adduser user@domain PASSWORD   (a new database)
    xmppctl --data-dir DIR passwd user@domain PASSWORD
    xmppctl --data-dir DIR deluser user@domain
    xmppctl --data-dir DIR disable user@domain      (and enable)
    xmppctl --data-dir DIR list [domain]
    xmppctl --redis URL cluster                     (the nodes, their liveness and sessions)

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
from xmppd.cluster.membership import survey
from xmppd.cluster.redis import end_sessions
from xmppd.protocol.scram import Credentials
from xmppd.storage import DATABASE_FILENAME, open_storage
from xmppd.storage.interfaces import AccountExists, AccountNotFound, StorageError
from xmppd.storage.redis import redis_client


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


async def cluster_table(config: cfg.Config) -> str:
    if not config.redis_url:
        raise CommandError("cluster: give the cluster's Redis (--redis URL or redis_url in the configuration)")
    client = redis_client(config.redis_url)
    try:
        nodes = await survey(client)
    except RedisError as e:
        raise CommandError(f"cluster: cannot reach Redis: {e}") from None
    finally:
        await client.aclose()
    rows = [("NODE", "STATE", "HEARTBEAT", "SESSIONS", "HOST")]
    for n in nodes:
        beat = f"{n.heartbeat_age:.1f}s ago" if n.heartbeat_age is not None else "expired"
        rows.append((n.node_id, "alive" if n.alive else "dead", beat, str(n.sessions), n.host))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


async def _end_sessions(config: cfg.Config, user: str, host: str, condition: str, text: str) -> str:
    """A running cluster ends the account's sessions (a lone node's xmppctl has no way to it)."""
    if not config.redis_url:
        return ""
    client = redis_client(config.redis_url)
    try:
        nodes = await end_sessions(client, f"{user}@{host}", condition, text)
    finally:
        await client.aclose()
    return f"; its sessions on {nodes} running node(s) were ended" if nodes else ""


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
    _refuse_a_new_database(config, args.init)
    storage = open_storage(config.data_dir, config.redis_url or None)
    accounts = storage.accounts
    try:
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
            return f"deleted {user}@{host}" + await _end_sessions(config, user, host, "not-authorized", "account removed")
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
    except (cfg.ConfigError, CommandError, StorageError) as e:
        print(f"xmppctl: {e}", file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
