"""``xmpp roster`` (list, add, remove), ``xmpp subscriptions`` (answer requests one by one),
``xmpp subscribe``, ``xmpp accept`` and ``xmpp refuse``."""

from __future__ import annotations

import argparse

from twisted.internet import defer

from xmppd.client.cli.common import Command, jid_arg, ping
from xmppd.client.cli.terminal import Terminal, attach
from xmppd.client.stanza import sender
from xmppd.client.subscriptions import is_request

SUBSCRIPTION = {(False, False): "none", (True, False): "to", (False, True): "from", (True, True): "both"}


def register(commands: argparse._SubParsersAction) -> None:
    roster = commands.add_parser("roster", help="list (default), add or remove contacts")
    actions = roster.add_subparsers(dest="action", metavar="ACTION")
    roster.set_defaults(command=Command(list_roster))
    add = actions.add_parser("add", help="add or update a contact")
    add.add_argument("contact", type=jid_arg, metavar="JID")
    add.add_argument("--name", help="the name to show")
    add.add_argument("--group", action="append", default=[], help="a group (repeatable)")
    add.add_argument("--subscribe", action="store_true", help="also ask to see their presence")
    add.set_defaults(command=Command(add_contact))
    remove = actions.add_parser("remove", help="remove a contact (and the subscriptions both ways)")
    remove.add_argument("contact", type=jid_arg, metavar="JID")
    remove.set_defaults(command=Command(remove_contact))

    for name, run, help in (
        ("subscribe", subscribe, "ask to see JID's presence"),
        ("accept", accept, "let JID see your presence"),
        ("refuse", refuse, "refuse JID's request, or stop JID seeing your presence"),
    ):
        command = commands.add_parser(name, help=help)
        command.add_argument("contact", type=jid_arg, metavar="JID")
        command.set_defaults(command=Command(run))
    requests = commands.add_parser("subscriptions", help="answer the pending subscription requests, one by one")
    requests.add_argument("--wait", type=float, default=2.0, metavar="SECONDS", help="how long to wait for requests (2)")
    requests.set_defaults(command=Command(answer_requests, available=True, interactive=True))


async def list_roster(client, args, out) -> None:
    items = await client.roster.get(args.timeout)
    for item in sorted(items.values(), key=lambda item: item.entity.full()):
        state = SUBSCRIPTION[item.subscriptionTo, item.subscriptionFrom] + (" (asked)" if item.pendingOut else "")
        groups = ", ".join(sorted(item.groups))
        print("\t".join((item.entity.full(), item.name or "-", state, groups or "-")), file=out)


async def add_contact(client, args, out) -> None:
    await client.roster.set(args.contact, args.name, args.group, args.timeout)
    if args.subscribe:
        client.subscriptions.request(args.contact)
        await ping(client)


async def remove_contact(client, args, out) -> None:
    await client.roster.remove(args.contact, args.timeout)


async def subscribe(client, args, out) -> None:
    client.subscriptions.request(args.contact)
    await ping(client)


async def accept(client, args, out) -> None:
    client.subscriptions.approve(args.contact)
    await ping(client)


async def refuse(client, args, out) -> None:
    client.subscriptions.deny(args.contact)
    await ping(client)


async def answer_requests(client, args, out) -> None:
    """The server hands pending requests over after our initial presence; each is asked about in turn."""
    answers: defer.DeferredQueue = defer.DeferredQueue()
    terminal = Terminal(answers.put, prompt="")
    attach(terminal)
    asked = 0
    while True:
        try:
            request = await client.next(is_request, args.wait)
        except defer.TimeoutError:
            break
        asker = sender(request).userhost()
        asked += 1
        terminal.show(f"{asker} asks to see your presence. Accept? [y/n]")
        answer = (await answers.get()).strip().lower()
        if answer in ("y", "yes"):
            client.subscriptions.approve(asker)
            terminal.show(f"accepted {asker}")
        else:
            client.subscriptions.deny(asker)
            terminal.show(f"refused {asker}")
    terminal.show(f"{asked or 'no'} request{'s' if asked != 1 else ''} answered")
    await ping(client)
