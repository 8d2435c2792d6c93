"""``xmpp``: a console client on xmppd.client.

    xmpp send JID TEXT...            one message
    xmpp chat JID                    chat, with chat states both ways
    xmpp join ROOM@SERVICE NICK      talk in a room
    xmpp roster [add|remove] ...     the contact list
    xmpp subscriptions               answer who asks to see your presence
    xmpp vcard [JID] | vcard set F=V show or change a vCard
    xmpp privacy ...                 privacy lists
    xmpp block JID... | unblock ...  the blocklist

The account comes from --jid/--password, XMPP_JID/XMPP_PASSWORD, or the
config file (mode 0600); a password found nowhere is asked for, never
echoed. Exit status: 0 done, 1 the server or the network said no (one line
naming the XMPP condition), 2 bad arguments (one line).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext

from twisted.internet import defer, task

from xmppd.client.cli import contacts, messages, privacy, rooms, vcard
from xmppd.client.cli.account import Account, UsageError, load
from xmppd.client.cli.terminal import cbreak
from xmppd.client.connection import connect
from xmppd.client.errors import ClientError

GROUPS = (messages, rooms, contacts, vcard, privacy)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str):
        raise UsageError(message)


def parser() -> Parser:
    top = Parser(prog="xmpp", description="A console XMPP client.")
    top.add_argument("--jid", help="the account (or XMPP_JID, or the config file)")
    top.add_argument("--password", help="its password (or XMPP_PASSWORD, or the config file; asked for if none)")
    top.add_argument("--config", help="config file, mode 0600 (~/.config/xmpp/config)")
    top.add_argument("--host", help="server host (default: the domain's SRV records, then the domain)")
    top.add_argument("--port", type=int, help="server port (5222)")
    top.add_argument("--ca-file", help="PEM file of the CAs to trust instead of the system's")
    top.add_argument("--insecure", action="store_true", help="do not check the server's certificate")
    top.add_argument("--resource", help="the resource to ask for")
    top.add_argument("--mechanism", help="the SASL mechanism to use instead of the best offered (e.g. SCRAM-SHA-1 for ejabberd before 23.10 under TLS 1.3)")
    top.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server (10)")
    commands = top.add_subparsers(dest="name", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for group in GROUPS:
        group.register(commands)
    return top


async def session(args, account: Account) -> None:
    client = await connect(
        account.jid,
        account.password,
        host=account.host,
        port=account.port,
        ca_file=account.ca_file,
        insecure=account.insecure,
        resource=account.resource,
        mechanism=args.mechanism,
        timeout=args.timeout,
    )
    try:
        if args.command.available:
            await client.roster.get(args.timeout)
            client.presence.available()
        await args.command.run(client, args, sys.stdout)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        account = load(args)
    except UsageError as e:
        print(f"xmpp: {e}", file=sys.stderr)
        return 2
    status = 0

    def failed(failure):
        """A refusal or a lost server is one line and status 1; bad input, 2; anything else a traceback."""
        nonlocal status
        failure.trap(ClientError, UsageError, ValueError)
        status = 1 if isinstance(failure.value, ClientError) else 2
        print(f"xmpp: {failure.value}", file=sys.stderr)

    with cbreak() if args.command.interactive else nullcontext():
        try:
            task.react(lambda reactor: defer.Deferred.fromCoroutine(session(args, account)).addErrback(failed))
        except SystemExit as e:
            return status or e.code
    return status
