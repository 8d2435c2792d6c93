"""``xmppctl reload`` and SIGHUP: read the configuration again and apply what can change at run time.

Each option says in the schema when a change takes effect (``Option.reload``).
A reload reads the file the node was started with, with the same command-line
overrides (they still win), and checks it whole before touching anything: a bad
file, or a certificate that does not load, changes nothing. The options that may
change take their new values in the node's one ``Config``, which every part
reads where it uses a value; the few parts that copied a value at start are
told (``follow_config``). Every other change is reported as needing a restart
and is not applied. The certificate files are read again each time, so a
certificate renewed at the same paths is served to new connections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.logger import Logger

from xmppd import compat, plugin
from xmppd import config as cfg
from xmppd.streams.tls import CertificateError, ServerCertificate, certificate_files

log = Logger()


def shown(option: cfg.Option, value) -> str:
    if option.secret:
        return "(secret)"
    if isinstance(value, (list, tuple)):  # lists, and per_ip_exempt's parsed networks
        return ",".join(str(v) for v in value) or "(none)"
    return str(value).lower() if option.type is bool else str(value)


@dataclass
class Plan:
    """What a reload changes: options that apply now, options that need a restart, new certificates."""

    config: cfg.Config  # the file as read now
    live: list[cfg.Option] = field(default_factory=list)
    restart: list[cfg.Option] = field(default_factory=list)
    client_certificate: ServerCertificate | None = None
    federation_certificate: ServerCertificate | None = None

    def lines(self, old: cfg.Config) -> dict:
        """The admin endpoint's answer: each change as 'name old -> new', secrets hidden."""
        def changes(options):
            return [f"{o.name} {shown(o, old.values[o.name])} -> {shown(o, self.config.values[o.name])}" for o in options]

        return {"applied": changes(self.live), "restart": changes(self.restart), "certificate": self.certificate_renewed}

    @property
    def certificate_renewed(self) -> bool:
        return self.client_certificate is not None


def plan(node) -> Plan:
    """Read and check the configuration; raises ConfigError (one line) or CertificateError."""
    old = node.config
    new = cfg.load(old.path, old.overrides)
    found = Plan(new)
    for option in cfg.SCHEMA:
        if new.values[option.name] != old.values[option.name]:
            (found.live if option.reload else found.restart).append(option)
    certificate = certificate_files(_served(old, new, found.live))
    found.client_certificate = node.tls_context.renewed(*certificate)
    if node.federation is not None:
        found.federation_certificate = node.federation.tls.options.renewed(*certificate)
    return found


def _served(old: cfg.Config, new: cfg.Config, live: list[cfg.Option]) -> cfg.Config:
    """The configuration the node will run with: the new values of the options that may change."""
    values = dict(old.values)
    values.update((o.name, new.values[o.name]) for o in live)
    return cfg.Config(values, old.source, old.path, old.overrides)


def apply(node, found: Plan) -> None:
    """New values into the node's one Config (read where used), then the parts that copied one at start."""
    config = node.config
    config.values.update((o.name, found.config.values[o.name]) for o in found.live)
    if found.client_certificate is not None:
        node.tls_context.serve(found.client_certificate)
    if found.federation_certificate is not None:
        node.federation.tls.serve(found.federation_certificate)
    compat.limit_address_caches(config.address_cache_mb << 20)
    plugin.set_log_level(config.log_level)
    node.modules.follow_config()
    for part in [*node.modules.modules, *node.router.services.values(), node.cluster]:
        follow = getattr(part, "follow_config", None)
        if follow is not None:
            follow()


def reload(node, dry_run: bool = False) -> dict:
    """What changed (or would, with ``dry_run``), as the admin endpoint answers it; logged."""
    found = plan(node)
    report = {"node": node.node_id, "dry_run": dry_run, **found.lines(node.config)}
    if dry_run:
        return report
    apply(node, found)
    if report["applied"]:
        log.info("reload: applied {changes}", changes="; ".join(report["applied"]))
    if report["restart"]:
        log.info("reload: needs a restart, not applied: {changes}", changes="; ".join(report["restart"]))
    if found.certificate_renewed:
        log.info("reload: new TLS certificate served to new connections")
    if not (report["applied"] or report["restart"] or found.certificate_renewed):
        log.info("reload: nothing changed in {path}", path=node.config.source)
    return report


def on_signal(node) -> None:
    """SIGHUP: a reload whose refusal is a log line (nobody waits for an answer)."""
    try:
        reload(node)
    except (cfg.ConfigError, CertificateError) as e:
        log.error("reload refused, nothing changed: {error}", error=e)
