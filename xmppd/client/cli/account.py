"""Who the ``xmpp`` command logs in as: options, then the environment, then a config file.

The config file (``~/.config/xmpp/config`` unless ``--config``) is INI with
an ``[account]`` section: ``jid``, ``password``, and optionally ``host``,
``port``, ``ca_file``, ``insecure``. It holds a password, so it is refused
unless only its owner may read it (mode 0600 or stricter). A password found
nowhere is asked for without echo.
"""

from __future__ import annotations

import configparser
import getpass
import os
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG = Path("~/.config/xmpp/config")


class UsageError(Exception):
    """The command line or the config file is wrong: one line, exit status 2."""


@dataclass(frozen=True)
class Account:
    jid: str
    password: str
    host: str | None = None
    port: int = 5222
    ca_file: str | None = None
    insecure: bool = False
    resource: str | None = None


def load(args, environ=os.environ, ask=getpass.getpass) -> Account:
    """The account from ``args`` (options win), ``environ`` (XMPP_JID, XMPP_PASSWORD), then the file."""
    path = Path(args.config).expanduser() if args.config else DEFAULT_CONFIG.expanduser()
    stored = _read(path, required=bool(args.config))
    jid = args.jid or environ.get("XMPP_JID") or stored.get("jid")
    if not jid:
        raise UsageError("no account: give --jid, set XMPP_JID, or write jid in " + str(path))
    password = args.password or environ.get("XMPP_PASSWORD") or stored.get("password")
    if not password:
        password = ask(f"Password for {jid}: ")
    port = args.port or stored.get("port") or 5222
    try:
        port = int(port)
    except ValueError:
        raise UsageError(f"port must be a number, not {port!r}") from None
    return Account(
        jid=jid,
        password=password,
        host=args.host or stored.get("host"),
        port=port,
        ca_file=args.ca_file or stored.get("ca_file"),
        insecure=args.insecure or stored.get("insecure", "").lower() in ("1", "true", "yes"),
        resource=args.resource,
    )


def _read(path: Path, required: bool) -> dict[str, str]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if required:
            raise UsageError(f"{path}: no such file") from None
        return {}
    if stat.S_IMODE(mode) & 0o077:
        raise UsageError(f"{path} may be read by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: {str(e).splitlines()[0]}") from None
    return dict(parser["account"]) if parser.has_section("account") else {}
