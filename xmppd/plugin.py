"""What ``twistd xmppd`` runs: options from the config schema, the asyncio reactor, the node."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import NoReturn

from twisted.python import usage

from xmppd import config as cfg, diagnostics
from xmppd.util.generations import OldGeneration

PIDFILE = "twistd.pid"  # twistd's default, in the working directory; a node keeps it in its data directory
LOG_OBSERVER = "xmppd.plugin.log_observer"  # twistd's --logger, unless the user gives one
_log = {}  # twistd's options and the node's log_level, for log_observer; then its level filter

REACTOR_HINT = "xmppd needs Twisted's asyncio reactor (redis-py is asyncio); run twistd without --reactor"


def install_reactor() -> None:
    """The asyncio reactor on uvloop when available; refuse a reactor chosen by the user."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import asyncioreactor, reactor

        if not isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
            raise SystemExit(f"twistd xmppd: {REACTOR_HINT}")
        return
    from twisted.internet import asyncioreactor

    try:
        import uvloop
    except ImportError:
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Run an xmppd node. Options override the configuration file."
    optParameters = [["config", "c", None, "TOML configuration file"]] + [
        [o.flag[2:], None, None, o.doc] for o in cfg.SCHEMA if o.cli and o.type is not bool
    ]
    optFlags = [[o.flag[2:], None, o.doc] for o in cfg.SCHEMA if o.cli and o.type is bool]

    def __init__(self):
        install_reactor()
        super().__init__()

    def parseOptions(self, options=None):
        """A mistake on the command line is one line: twistd would print its whole usage first."""
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            exit_with(f"{e} (twistd xmppd --help lists the options)")

    def postOptions(self):
        try:
            self.node_config = cfg.load(self["config"], self.overrides())
        except cfg.ConfigError as e:
            exit_with(str(e))
        parent = getattr(self, "parent", None)  # twistd's own options
        if parent is None:
            return
        if parent["logger"] is None:
            parent["logger"] = LOG_OBSERVER
            _log.update(twistd=parent, level=self.node_config.log_level)
        if parent["pidfile"] == PIDFILE:  # a node per data directory, wherever it is started
            parent["pidfile"] = os.path.abspath(self.node_config.data_dir / PIDFILE)
        running = running_pid(parent["pidfile"])
        if running is not None:
            exit_with(f"{parent['pidfile']} names a running process ({running}): give each node its own --data-dir")

    def overrides(self) -> dict:
        found = {}
        for option in cfg.SCHEMA:
            if option.cli:
                value = self.get(option.flag[2:])
                found[option.name] = (True if value else None) if option.type is bool else value
        return found


def makeService(options: Options):
    from xmppd import reload
    from xmppd.service import make_node_service
    from xmppd.streams.tls import CertificateError

    config = options.node_config
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        node_service = make_node_service(config)
    except CertificateError as e:
        exit_with(str(e))
    except OSError as e:
        exit_with(f"data directory {config.data_dir}: {e.strerror}")
    tune_gc(node_service.node.reclaimer.generations)
    loop = asyncio.get_event_loop()  # the reactor's loop, set by install_reactor()
    diagnostics.install(loop)
    loop.add_signal_handler(signal.SIGHUP, reload.on_signal, node_service.node)
    return node_service


def exit_with(message: str) -> NoReturn:
    """An operator's mistake: one line and status 2, before anything runs."""
    sys.stderr.write(f"xmppd: {message}\n")
    raise SystemExit(2)


def running_pid(pidfile: str) -> int | None:
    """The live process a pid file names, if any (twistd removes a stale one itself)."""
    try:
        with open(pidfile) as f:
            pid = int(f.read())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def log_observer():
    """twistd's own observer (stdout, --logfile or --syslog) passing events from log_level up.

    twistd builds it from its --logger option, which postOptions points here."""
    from twisted.logger import FilteringLogObserver, ILogObserver, LegacyLogObserverWrapper, LogLevel, LogLevelFilterPredicate
    from twisted.scripts._twistd_unix import UnixAppLogger

    observer = UnixAppLogger(_log["twistd"])._getLogObserver()
    if not ILogObserver.providedBy(observer):  # syslog's is a legacy one
        observer = LegacyLogObserverWrapper(observer)
    _log["filter"] = LogLevelFilterPredicate(LogLevel.levelWithName(_log["level"]))
    _log["debug"] = _log["level"] == "debug"
    return FilteringLogObserver(observer, [_log["filter"]])


def set_log_level(name: str) -> None:
    """``xmppctl reload`` of log_level; a node not started by twistd's logger (tests) has none to change."""
    from twisted.logger import LogLevel

    if "filter" in _log:
        _log["filter"].setLogLevelForNamespace("", LogLevel.levelWithName(name))
        _log["debug"] = name == "debug"


def debug_logged() -> bool:
    """Whether a debug event would be written: the per-login ones are not even built otherwise
    (an event no observer keeps still costs ~25 Python calls to emit and filter)."""
    return _log.get("debug", True)


def tune_gc(generations: OldGeneration) -> None:
    """Freezing what startup built (modules, classes, the node: objects that live for
    ever) keeps full collections from walking them: without it a node logging in 1000
    clients paused 38 and 51 ms in full collections, with it none ran; holding the old
    generation goes on freezing what the node's own full collections leave
    (util/generations.py). The young generation keeps CPython's threshold: 10,000
    instead of 700 cost 7 KB of RSS per idle session (43.8 against 36.5 KB, 5000
    PLAIN logins with roster and presence) for a collection that parsed stanzas,
    no longer cycles, barely need."""
    generations.hold()
