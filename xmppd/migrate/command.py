"""``xmppctl export FILE|-`` and ``xmppctl import [--dry-run] [--replace] PATH...|-``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from xmppd.config import Config
from xmppd.migrate.export import export
from xmppd.migrate.load import FileError, Reader, xml_files
from xmppd.migrate.records import (
    BATCH,
    AccountRecord,
    Counts,
    write_account,
    write_room,
)
from xmppd.storage import Storage

COMMANDS = ("export", "import")
STDIO = "-"


class MigrateError(Exception):
    """What stops an import or export, in one line."""


def add_parsers(commands: argparse._SubParsersAction) -> None:
    out = commands.add_parser("export", help="write every account and stored MUC room to a XEP-0227 file")
    out.add_argument("file", help="the file to write, or - for standard output")
    into = commands.add_parser("import", help="read XEP-0227 files (ours, Prosody's, ejabberd's) into storage")
    into.add_argument("paths", nargs="+", metavar="path", help="a file, a directory of them (Prosody writes one per account), or - for standard input")
    into.add_argument("--dry-run", action="store_true", help="check everything and count it; store nothing")
    into.add_argument("--replace", action="store_true", help="an account or room that exists is deleted and imported again (default: refuse it)")


async def run(args: argparse.Namespace, storage: Storage, config: Config) -> str:
    if args.command == "export":
        return await _export(storage, config, args.file)
    return await _import(storage, config, args.paths, args.dry_run, args.replace)


async def _export(storage: Storage, config: Config, file: str) -> str:
    if file == STDIO:
        counts = await export(storage, config, sys.stdout.buffer)
        print(f"exported {counts}", file=sys.stderr)  # standard output is the file
        return ""
    part = Path(f"{file}.part")  # a failed export leaves no file that looks whole
    try:
        with open(part, "wb") as out:  # noqa: ASYNC230 - xmppctl runs nothing else on its loop
            counts = await export(storage, config, out)
        os.replace(part, file)
    except OSError as e:
        raise MigrateError(f"export: {e.strerror or e}: {e.filename or file}") from None
    finally:
        part.unlink(missing_ok=True)
    return f"exported {counts} to {file}"


async def _import(storage: Storage, config: Config, paths: list[str], dry_run: bool, replace: bool) -> str:
    reader, counts, batch = Reader(config), Counts(), []
    verb = "would import" if dry_run else "imported"
    files = [STDIO] if paths == [STDIO] else [f for p in paths for f in xml_files(Path(p))]
    try:
        for file in files:
            for record in reader.read(Path(file)):
                if isinstance(record, AccountRecord):
                    batch.append(record)
                    if len(batch) == BATCH:
                        await _accounts(storage, batch, counts, dry_run, replace)
                else:
                    if await storage.rooms.load(record.jid) is not None:
                        if not replace:
                            raise MigrateError(f"room {record.jid} exists: give --replace to import it again")
                        if not dry_run:
                            await storage.rooms.delete(record.jid, await storage.rooms.advance(record.jid))
                    if not dry_run:
                        await write_room(storage, record)
                    counts.rooms += 1
        await _accounts(storage, batch, counts, dry_run, replace)
    except (FileError, MigrateError) as e:
        await _accounts(storage, batch, counts, dry_run, replace)  # the whole accounts read before it
        raise MigrateError(f"{e} ({verb} before it: {counts})") from None
    skipped = ", ".join(f"{name} x{n}" for name, n in sorted(reader.skipped.items()))
    return f"{verb} {counts}" + (f"; not kept by xmppd: {skipped}" if skipped else "")


async def _accounts(storage: Storage, batch: list[AccountRecord], counts: Counts, dry_run: bool, replace: bool) -> None:
    """Write a batch at once and empty it; every write ends (or is rolled back) before a failure is raised."""
    records = batch[:]
    batch.clear()
    outcomes = await asyncio.gather(*(_account(storage, record, dry_run, replace) for record in records), return_exceptions=True)
    for record, outcome in zip(records, outcomes):
        if isinstance(outcome, BaseException):
            raise outcome
        counts.add(record)


async def _account(storage: Storage, record: AccountRecord, dry_run: bool, replace: bool) -> None:
    if await storage.accounts.exists(record.localpart, record.domain):
        if not replace:
            raise MigrateError(f"account {record.jid} exists: give --replace to import it again")
        if not dry_run:
            await storage.delete_account(record.localpart, record.domain)
    if not dry_run:
        await write_account(storage, record)
