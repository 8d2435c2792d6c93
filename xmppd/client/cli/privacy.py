"""``xmpp privacy`` (list names; show, edit, activate, default, remove a list) and
``xmpp block``/``unblock``/``blocked`` (XEP-0191).

A rule on the command line is ``ACTION[:TYPE=VALUE][:KIND,KIND...]``, e.g.
``deny:jid=bob@example.org:message,presence-in``, ``allow:subscription=both``
or ``deny``; the rules apply in the order given.
"""

from __future__ import annotations

import argparse

from xmppd.client.cli.common import Command, jid_arg
from xmppd.client.privacy import KINDS, Rule

STEP = 10  # orders given to rules: room to insert one by hand


def register(commands: argparse._SubParsersAction) -> None:
    privacy = commands.add_parser("privacy", help="privacy lists (XEP-0016)")
    privacy.set_defaults(command=Command(list_names))
    actions = privacy.add_subparsers(dest="action", metavar="ACTION")
    for name, run, help in (
        ("show", show_list, "show a list's rules"),
        ("activate", activate, "use a list for this session only"),
        ("default", make_default, "use a list for every session"),
        ("remove", remove_list, "remove a list"),
    ):
        action = actions.add_parser(name, help=help)
        action.add_argument("list", nargs=None if name in ("show", "remove") else "?", help="the list (none: stop using one)")
        action.set_defaults(command=Command(run))
    edit = actions.add_parser("edit", help="replace a list's rules (creating it)")
    edit.add_argument("list")
    edit.add_argument("rules", nargs="+", type=rule_arg, metavar="RULE", help="ACTION[:TYPE=VALUE][:KIND,...]")
    edit.set_defaults(command=Command(edit_list))

    block = commands.add_parser("block", help="block JIDs (XEP-0191)")
    block.add_argument("jids", nargs="+", type=jid_arg, metavar="JID")
    block.set_defaults(command=Command(block_jids))
    unblock = commands.add_parser("unblock", help="unblock JIDs, or everybody when none is given")
    unblock.add_argument("jids", nargs="*", type=jid_arg, metavar="JID")
    unblock.set_defaults(command=Command(unblock_jids))
    blocked = commands.add_parser("blocked", help="list the blocked JIDs")
    blocked.set_defaults(command=Command(list_blocked))


def rule_arg(value: str) -> tuple[str, str | None, str | None, tuple[str, ...]]:
    """ACTION[:TYPE=VALUE][:KINDS] as (action, type, value, kinds); the order comes later."""
    action, *parts = value.split(":", 2)
    kind = match = None
    kinds: tuple[str, ...] = ()
    for part in parts:
        if "=" in part and kind is None:
            kind, _, match = part.partition("=")
        else:
            kinds = tuple(part.split(","))
    try:
        Rule(action, 0, kind, match, kinds)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r}: {e}; kinds are {', '.join(KINDS)}") from None
    return action, kind, match, kinds


def describe(rule: Rule) -> str:
    matching = f"{rule.type}={rule.value}" if rule.type else "everybody"
    return f"{rule.order}\t{rule.action}\t{matching}\t{','.join(rule.stanzas) or 'all stanzas'}"


async def list_names(client, args, out) -> None:
    lists = await client.privacy.names(args.timeout)
    for name in lists.names:
        marks = [mark for mark, chosen in (("active", lists.active), ("default", lists.default)) if chosen == name]
        print(name + (f"\t({', '.join(marks)})" if marks else ""), file=out)


async def show_list(client, args, out) -> None:
    for rule in await client.privacy.get(args.list, args.timeout):
        print(describe(rule), file=out)


async def edit_list(client, args, out) -> None:
    rules = [Rule(action, STEP * (i + 1), kind, match, kinds) for i, (action, kind, match, kinds) in enumerate(args.rules)]
    await client.privacy.set(args.list, rules, args.timeout)


async def activate(client, args, out) -> None:
    await client.privacy.activate(args.list, args.timeout)


async def make_default(client, args, out) -> None:
    await client.privacy.make_default(args.list, args.timeout)


async def remove_list(client, args, out) -> None:
    await client.privacy.remove(args.list, args.timeout)


async def block_jids(client, args, out) -> None:
    await client.blocking.block(args.jids, args.timeout)


async def unblock_jids(client, args, out) -> None:
    await client.blocking.unblock(args.jids, args.timeout)


async def list_blocked(client, args, out) -> None:
    for jid in sorted(await client.blocking.blocklist(args.timeout)):
        print(jid, file=out)


