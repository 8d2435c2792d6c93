"""``xmpp vcard [JID]`` shows a vCard's simple fields; ``xmpp vcard set FIELD=VALUE...`` changes ours,
keeping every other part of it."""

from __future__ import annotations

import argparse

from xmppd.client.cli.account import UsageError
from xmppd.client.cli.common import Command, jid_arg
from xmppd.client.vcard import VCard


def register(commands: argparse._SubParsersAction) -> None:
    vcard = commands.add_parser("vcard", help="show a vCard (yours by default) or set fields of yours")
    vcard.add_argument("target", nargs="?", metavar="JID | set", help="whose vCard to show, or 'set'")
    vcard.add_argument("fields", nargs="*", metavar="FIELD=VALUE", help="with 'set': the fields, e.g. FN='Alice Liddell' NICKNAME=al")
    vcard.set_defaults(command=Command(vcard_command))


async def vcard_command(client, args, out) -> None:
    if args.target == "set":
        await set_fields(client, args)
        return
    if args.fields:
        raise UsageError("fields are given only with 'xmpp vcard set'")
    card = await client.vcard.get(jid_arg(args.target) if args.target else None, args.timeout)
    if card is None:
        print(f"{args.target or 'you'}: no vCard", file=out)
        return
    for name, value in card.fields():
        print(f"{name}: {value}", file=out)


async def set_fields(client, args) -> None:
    changes = []
    for field in args.fields:
        name, equals, value = field.partition("=")
        if not equals or not name.isalnum() or not name.isupper():
            raise UsageError(f"expected FIELD=VALUE with FIELD in capitals (FN, NICKNAME, URL...), not {field!r}")
        changes.append((name, value))
    if not changes:
        raise UsageError("xmpp vcard set needs at least one FIELD=VALUE")
    card = await client.vcard.get(None, args.timeout) or VCard()
    for name, value in changes:
        if value:
            card[name] = value
        else:
            del card[name]
    await client.vcard.set(card, args.timeout)
