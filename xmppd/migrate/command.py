"""``xmppctl export FILE|-`` and ``xmppctl import [--dry-run] [--replace] PATH...|-``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from xmppd.cluster.redis import end_sessions
from xmppd.config import Config
from xmppd.migrate.export import export
from xmppd.migrate.load import FileError, Reader, xml_files
from xmppd.migrate.records import (
    BATCH,
    AccountRecord,
    Counts,
    RoomImport,
    write_account,
    write_room,
)
from xmppd.storage import Storage
from xmppd.storage.redis import redis_client

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
    importing = Import(storage, config, args.dry_run, args.replace)
    try:
        return await importing.run(args.paths)
    finally:
        await importing.close()


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



class Import:
    """One ``xmppctl import``: accounts stored 64 at a time, rooms one by one, counted."""

    def __init__(self, storage: Storage, config: Config, dry_run: bool, replace: bool) -> None:
        self.storage, self.config, self.dry_run, self.replace = storage, config, dry_run, replace
        self.counts, self.replaced = Counts(), 0
        # a cluster's nodes end a replaced account's sessions, which hold what was there before
        self.cluster = redis_client(config.redis_url) if config.redis_url and replace and not dry_run else None

    async def run(self, paths: list[str]) -> str:
        reader, batch = Reader(self.config), []
        verb = "would import" if self.dry_run else "imported"
        files = [STDIO] if paths == [STDIO] else [f for p in paths for f in xml_files(Path(p))]
        try:
            for file in files:
                for record in reader.read(Path(file)):
                    if isinstance(record, AccountRecord):
                        batch.append(record)
                        if len(batch) == BATCH:
                            await self.accounts(batch)
                    else:
                        await self.room(record)
            await self.accounts(batch)
        except (FileError, MigrateError) as e:
            await self.accounts(batch)  # the whole accounts read before it
            raise MigrateError(f"{e} ({verb} before it: {self.counts})") from None
        skipped = ", ".join(f"{name} x{n}" for name, n in sorted(reader.skipped.items()))
        replaced = f"; {self.replaced} existing account(s) replaced" if self.replaced else ""
        return f"{verb} {self.counts}{replaced}" + (f"; not kept by xmppd: {skipped}" if skipped else "")

    async def accounts(self, batch: list[AccountRecord]) -> None:
        """Store a batch at once and empty it; every write ends (or is rolled back) before a failure is raised."""
        records = batch[:]
        batch.clear()
        outcomes = await asyncio.gather(*map(self.account, records), return_exceptions=True)
        for record, outcome in zip(records, outcomes):
            if isinstance(outcome, BaseException):
                raise outcome
            self.counts.add(record)

    async def account(self, record: AccountRecord) -> None:
        if await self.storage.accounts.exists(record.localpart, record.domain):
            if not self.replace:
                raise MigrateError(f"account {record.jid} exists: give --replace to import it again")
            if self.dry_run:
                return
            if self.cluster is not None:
                await end_sessions(self.cluster, record.jid, "reset", "the account is replaced by an import")
            await self.storage.delete_account(record.localpart, record.domain)
            self.replaced += 1
        if not self.dry_run:
            await write_account(self.storage, record)

    async def room(self, room: RoomImport) -> None:
        if await self.storage.rooms.load(room.jid) is not None:
            if not self.replace:
                raise MigrateError(f"room {room.jid} exists: give --replace to import it again")
            if not self.dry_run:
                await self.storage.rooms.delete(room.jid, await self.storage.rooms.advance(room.jid))
        if not self.dry_run:
            await write_room(self.storage, room)
        self.counts.rooms += 1

    async def close(self) -> None:
        if self.cluster is not None:
            await self.cluster.aclose()
