"""``xmppctl reload [--node NODE] [--dry-run]``: the nodes read their configuration again (xmppd/reload.py).

Through each node's token-gated ``/api/reload``, as drain and kick do: each node
reads the file it was started with, so each answers for itself, one line per kind
of change. A node that refuses its file (one line saying why) changed nothing.
"""

from __future__ import annotations

import argparse
import asyncio

from xmppd.web.remote import Endpoint, RemoteError, call


class ReloadFailed(Exception):
    """Some node refused or could not be reached; the message has every node's lines."""


def add_parser(commands) -> None:
    parser = commands.add_parser("reload", help="apply configuration changes without a restart (docs/operations.md)")
    parser.add_argument("--node", help="only this node (default: every live node)")
    parser.add_argument("--dry-run", action="store_true", help="print what would change, apply nothing")


def report(answer: dict) -> list[str]:
    node, dry = answer["node"], answer["dry_run"]
    lines = []
    if answer["applied"]:
        lines.append(f"{node}: {'would apply' if dry else 'applied'}: {'; '.join(answer['applied'])}")
    if answer["restart"]:
        lines.append(f"{node}: {'would need' if dry else 'needs'} a restart (not applied): {'; '.join(answer['restart'])}")
    if answer["certificate"]:
        lines.append(f"{node}: {'would serve' if dry else 'serves'} a new TLS certificate to new connections")
    return lines or [f"{node}: nothing {'would change' if dry else 'changed'}"]


async def run(endpoints: list[Endpoint], token: str, args: argparse.Namespace) -> str:
    if args.node is not None:
        named = [e for e in endpoints if e.node_id == args.node]
        if not named:
            raise ReloadFailed(f"reload: no live node {args.node!r} (nodes: {', '.join(sorted(e.node_id for e in endpoints)) or 'none'})")
        endpoints = named
    form = {"dry_run": "1"} if args.dry_run else {}
    answers = await asyncio.gather(*(call(e, token, "reload", form) for e in endpoints), return_exceptions=True)
    lines, failed = [], False
    for answer in answers:
        if isinstance(answer, RemoteError):
            lines.append(str(answer))
            failed = True
        elif isinstance(answer, BaseException):
            raise answer
        else:
            lines.extend(report(answer))
    if failed:
        raise ReloadFailed("\n".join(lines))
    return "\n".join(lines)
