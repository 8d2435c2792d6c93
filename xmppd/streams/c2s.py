"""Client-to-server streams: STARTTLS, SASL, resource binding, then stanzas (RFC 6120 §5-7).

Negotiation lives here and nowhere else. Once a resource is bound, every
stanza is stamped with the stream's full JID (CORE-40) and handed to
``node.router``; the stream itself knows nothing of delivery rules.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from twisted.internet import protocol
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from xmppd.modules import SERVER, IQRequest
from xmppd.plugin import debug_logged
from xmppd.protocol import xml as X
from xmppd.protocol.sasl import ChannelBinding, channel_binding, server_mechanisms
from xmppd.protocol.stanzas import StanzaError, check_iq, check_message, error_reply, parse_jid, parts_fit, result
from xmppd.sessions import Resource
from xmppd.streams import sasl, tls
from xmppd.streams.base import ServerStream, StreamError, ping_request
from xmppd.util import identifiers
from xmppd.util.aio import run_in_background

STANZAS = frozenset(("message", "presence", "iq"))
NS_LEGACY_AUTH = "jabber:iq:auth"  # XEP-0078, not served here (LEG-01)


# Every mechanism some stream may be offered (TLS, binding data present: any non-None value
# stands for it): the only names a metric label takes; a client's other names count as 'other'.
KNOWN_MECHANISMS = frozenset(server_mechanisms(True, True))


def _asks_for_legacy_auth(stanza: domish.Element) -> bool:
    child = stanza.firstChildElement()
    return stanza.name == "iq" and stanza.getAttribute("type") in ("get", "set") and child is not None and child.uri == NS_LEGACY_AUTH


class ClientStream(ServerStream):
    """One client connection, from the first byte to the last."""

    __slots__ = (
        "tls_active", "channel_binding", "mechanism", "auth_failures", "bind_failures", "username", "resource", "_held",
    )  # fmt: skip

    def __init__(self, server, direct_tls: bool = False):
        super().__init__(server)
        self.tls_active = direct_tls
        if direct_tls:
            server.tally.tls_handshakes["direct"] += 1
        self.channel_binding: ChannelBinding | None = None
        self.mechanism = None
        self.mechanism_name: str | None = None  # the one the client last asked for, as it spelt it
        self.auth_failures = 0
        self.bind_failures = 0
        self.username: str | None = None
        self.resource: Resource | None = None
        self._held: list[bytes] | None = None  # output queued behind a flush of offline messages

    # -- header and features ------------------------------------------------------

    def choose_domain(self, to: str | None) -> str:
        if to is None:
            return self.config.domains[0]
        if to in self.node.domains:  # already prepared: the common case, no stringprep
            return to
        if not to or not identifiers.jid_fits(to):  # empty, or refused before stringprep could spend the reactor's time on it
            raise StreamError("host-unknown")
        try:
            host = jid.JID(to).host
        except (jid.InvalidFormat, UnicodeError):
            raise StreamError("host-unknown") from None
        if host not in self.node.domains:
            raise StreamError("host-unknown")
        return host

    @property
    def node(self):
        return self.server

    def stream_started(self, root: domish.Element):
        if self.version < (1, 0):
            # Pre-1.0 streams have no features, so they cannot negotiate the TLS we
            # require (unsupported-feature); without that requirement they can still
            # only fail: there is no legacy authentication here.
            if self.config.tls_required and not self.tls_active:
                raise StreamError("unsupported-feature", "STARTTLS is required and needs XMPP 1.0 stream features")
            self.send_header()
            return
        if self.tls_active and self.username is None and self.channel_binding is None:
            self.channel_binding = channel_binding(self.transport.getHandle(), client=False)
        self.send_header("<stream:features>" + "".join(self.features()) + "</stream:features>")

    def features(self) -> list[str]:
        if not self.tls_active:
            required = self.config.tls_required
            offer = [f"<starttls xmlns='{X.NS_TLS}'>{'<required/>' if required else ''}</starttls>"]
            if required:
                return offer
        else:
            offer = []
        if self.username is None:
            names = server_mechanisms(self.tls_active, self.channel_binding)
            offer.append(
                f"<mechanisms xmlns='{X.NS_SASL}'>" + "".join(f"<mechanism>{n}</mechanism>" for n in names) + "</mechanisms>"
            )
            if self.channel_binding is not None:
                offer.append(
                    f"<sasl-channel-binding xmlns='{X.NS_SASL_CB}'>"
                    f"<channel-binding type='{self.channel_binding.type}'/></sasl-channel-binding>"
                )
            offer.extend(self.node.stream_features("pre-auth"))
            return offer
        offer.append(f"<bind xmlns='{X.NS_BIND}'/>")
        offer.append(f"<session xmlns='{X.NS_SESSION}'><optional/></session>")
        offer.extend(self.node.stream_features("post-auth"))
        return offer

    # -- dispatch by negotiation state ---------------------------------------------

    def is_established(self) -> bool:
        return self.resource is not None

    def negotiation_deadline(self) -> float:
        """TLS and SASL within auth_timeout (a crowd of idle sockets goes soon), binding within negotiation_timeout."""
        if self.username is None:
            return self.connected_at + min(self.config.auth_timeout, self.config.negotiation_timeout)
        return super().negotiation_deadline()

    def element_received(self, element: domish.Element):
        if self.resource is not None:
            return self.stanza_received(element)
        if element.uri == X.NS_TLS and element.name == "starttls":
            return self.start_tls()
        if element.uri == X.NS_SASL:
            return self.sasl_element(element)
        if element.uri != self.content_namespace or element.name not in STANZAS:
            raise StreamError("unsupported-stanza-type")
        if self.username is None and _asks_for_legacy_auth(element):
            self.refuse_legacy_auth(element)
            return None
        if self.version < (1, 0) or (self.config.tls_required and not self.tls_active):
            raise StreamError("not-authorized")
        if element.name != "iq":
            raise StreamError("not-authorized", "bind a resource first")
        if self.username is None:
            return self.pre_auth_iq(element)
        return self.pre_bind_iq(element)

    # -- STARTTLS (CORE-10..12) -----------------------------------------------------

    def start_tls(self):
        if self.tls_active or self.username is not None or self.node.tls_context is None:
            self.send(f"<failure xmlns='{X.NS_TLS}'/>")
            self.close()
            return
        self.send(f"<proceed xmlns='{X.NS_TLS}'/>")
        self.flush_output()  # in the clear, before the TLS layer goes in
        tls.start_tls(self.transport, self.node.tls_context)
        self.tls_active = True
        self.node.tally.tls_handshakes["starttls"] += 1
        self.restart_after_tls()

    # -- SASL (CORE-20..27) -----------------------------------------------------------

    def sasl_element(self, element: domish.Element):
        if self.username is not None:
            raise StreamError("policy-violation", "already authenticated")
        if element.name == "auth":
            return self.sasl_auth(element)
        if element.name == "response" and self.mechanism is not None:
            return self.sasl_step(element)
        if element.name == "abort":
            self.mechanism = None
            self.sasl_failure("aborted", count=False)
            return None
        self.sasl_failure("malformed-request")
        return None

    def sasl_auth(self, element: domish.Element):
        self.mechanism = None
        name = element.getAttribute("mechanism")
        self.mechanism_name = name if name in KNOWN_MECHANISMS else "other"  # a metric label: a bounded set
        if self.config.tls_required and not self.tls_active:
            self.sasl_failure("encryption-required")
            return None
        if name not in server_mechanisms(self.tls_active, self.channel_binding):
            secure_only = not self.tls_active and name in server_mechanisms(True, None)
            self.sasl_failure("encryption-required" if secure_only else "invalid-mechanism")
            return None
        self.mechanism = sasl.make_server_mechanism(
            name, self._credentials, self.channel_binding, cb_offered=self.channel_binding is not None,
            max_password_bytes=self.config.max_password_bytes,
        )
        text = str(element).strip()
        if not text:
            return self._sasl_run(None)
        return self.sasl_step(element)

    def sasl_step(self, element: domish.Element):
        text = str(element).strip()
        try:
            data = b"" if text == "=" else base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            self.mechanism = None
            self.sasl_failure("incorrect-encoding")
            return None
        return self._sasl_run(data)

    async def _credentials(self, username: str):
        try:
            localpart = jid.nodeprep.prepare(username)
        except UnicodeError:
            return None
        if not self.node.cluster.ready:  # e.g. Redis is away: the client may retry later (RFC 6120 §6.5.12)
            raise sasl.SASLFailure("temporary-auth-failure")
        try:
            return await self.node.storage.accounts.credentials(localpart, self.domain)
        except Exception as e:  # storage down
            self.log.warn("credential lookup for {user} failed: {error}", user=localpart, error=e)
            raise sasl.SASLFailure("temporary-auth-failure") from e

    async def _sasl_run(self, data: bytes | None):
        mechanism = self.mechanism
        try:
            kind, out = await mechanism.step(data)
            if kind == "success":
                self._check_authzid(mechanism)
                await self._check_enabled(mechanism.username)
        except sasl.SASLFailure as e:
            self.mechanism = None
            self.sasl_failure(e.condition)
            return
        if self.closed or mechanism is not self.mechanism:
            return
        encoded = base64.b64encode(out).decode() if out else ""
        if kind == "challenge":
            self.send(f"<challenge xmlns='{X.NS_SASL}'>{encoded}</challenge>")
            return
        self.mechanism = self.channel_binding = None  # negotiation's: not kept for the session's hours
        if not self.node.authenticated(self):
            self.stream_error("resource-constraint", "too many authenticated connections from your address")
            return
        self.username = jid.nodeprep.prepare(mechanism.username)
        self.node.tally.logins[mechanism.name] += 1
        if mechanism.completed is not None:
            run_in_background(self.node.storage.accounts.set_credentials(self.username, self.domain, mechanism.completed),
                              self.log, f"storing {self.username}@{self.domain}'s keys for every hash failed")
        if out == b"":  # zero-length additional data is sent as '=' (RFC 6120 §6.4.6)
            encoded = "="
        self.send(f"<success xmlns='{X.NS_SASL}'>{encoded}</success>")
        if debug_logged():
            self.log.debug("{user}@{domain} authenticated with {mech}", user=self.username, domain=self.domain, mech=mechanism.name)
        self.restart()

    async def _check_enabled(self, username: str) -> None:
        """Only after the password proved right: strangers learn nothing of the account."""
        if await self.node.storage.accounts.disabled(jid.nodeprep.prepare(username), self.domain):
            raise sasl.SASLFailure("account-disabled")

    def _check_authzid(self, mechanism) -> None:
        authzid = mechanism.authzid
        if not authzid:
            return
        try:
            wanted = jid.JID(authzid)
        except (jid.InvalidFormat, UnicodeError):
            raise sasl.SASLFailure("invalid-authzid") from None
        if wanted.resource or wanted.user != jid.nodeprep.prepare(mechanism.username) or wanted.host != self.domain:
            raise sasl.SASLFailure("invalid-authzid")

    def sasl_failure(self, condition: str, count: bool = True):
        self.send(f"<failure xmlns='{X.NS_SASL}'><{condition}/></failure>")
        if count:
            self.node.tally.auth_failures[(self.mechanism_name or "none", condition)] += 1
            self.log.info("authentication failed from {address} for {domain}: {condition}",
                          address=self.transport.getPeer().host, domain=self.domain, condition=condition)
            self.auth_failures += 1
            if self.auth_failures >= self.config.max_auth_failures:
                self.stream_error("policy-violation", "too many failed authentication attempts")

    # -- before binding ---------------------------------------------------------------

    def refuse_legacy_auth(self, iq: domish.Element):
        """LEG-01: an old client learns from an IQ error, not a stream error, that there is no
        XEP-0078 here, and may go on with SASL; the answer tells nothing, so it is given before TLS too."""
        try:
            check_iq(iq)
            error = StanzaError("service-unavailable")
        except StanzaError as malformed:
            error = malformed
        self.send(error_reply(iq, error))

    def pre_auth_iq(self, iq: domish.Element):
        """Only in-band registration (XEP-0077) is served before authentication."""
        try:
            check_iq(iq)
            target = parse_jid(iq.getAttribute("to")) or jid.internJID(self.domain)
        except StanzaError as e:
            self.send(error_reply(iq, e))
            return None
        if iq["type"] not in ("get", "set"):
            return None
        if target.user or target.host != self.domain or not self.node.modules.serves_before_auth(iq["type"], iq.firstChildElement().uri):
            raise StreamError("not-authorized", "authenticate first")
        return self._answer_locally(IQRequest(iq, None, target, self))

    async def _answer_locally(self, request: IQRequest):
        self.send(await self.node.modules.handle_iq(SERVER, request))

    def pre_bind_iq(self, iq: domish.Element):
        try:
            check_iq(iq)
        except StanzaError as e:
            self.send(error_reply(iq, e))
            return None
        child = iq.firstChildElement() if iq["type"] in ("get", "set") else None
        if child is not None and iq["type"] == "set" and (child.uri, child.name) == (X.NS_BIND, "bind"):
            return self.bind(iq, child)
        if child is not None and (child.uri, child.name) == (X.NS_SESSION, "session"):
            self.send(result(iq))
            return None
        if child is not None:
            self.send(error_reply(iq, "not-authorized", "bind a resource first"))
        return None

    async def bind(self, iq: domish.Element, request: domish.Element):
        """CORE-30/31: bind the asked-for or a generated resource; the newest session wins."""
        wanted = (str(request.resource) if request.resource else "").strip()
        if not identifiers.fits(wanted):
            return self._bind_failed(iq, "bad-request", "resource longer than 1023 bytes")
        try:
            full = jid.JID(tuple=(self.username, self.domain, wanted or secrets.token_hex(6)))
        except (jid.InvalidFormat, UnicodeError):
            return self._bind_failed(iq, "bad-request", "invalid resource")
        if not parts_fit(full):
            return self._bind_failed(iq, "bad-request", "resource longer than 1023 bytes")
        directory = self.node.directory
        replacing = directory.resource(full) is not None
        if not replacing and directory.count(full.userhost()) >= self.config.max_resources:
            return self._bind_failed(iq, "resource-constraint", "too many resources")
        if not self.node.cluster.ready:
            return self._bind_failed(iq, "resource-constraint", "the server cannot take new sessions now; retry later")
        resource = Resource(full, self.node.node_id, stream=self)
        try:
            replaced = await directory.bind(resource)
        except Exception as e:  # the cluster's directory is unreachable
            self.log.warn("binding {jid} failed: {error}", jid=full.full(), error=e)
            return self._bind_failed(iq, "resource-constraint", "the server cannot take new sessions now; retry later")
        if self.closed:
            await directory.unbind(resource)
            return None
        if replaced is not None and replaced.stream is not None:
            replaced.stream.stream_error("conflict", "replaced by a new session")
        self.resource = resource
        self.established()
        prepared = self.node.modules.fire("resource-bound", resource)
        if prepared is not None:
            await prepared
        answer = result(iq, domish.Element((X.NS_BIND, "bind")))
        answer.firstChildElement().addElement("jid", content=full.full())
        self.send(answer)
        if debug_logged():
            self.log.debug("bound {jid}", jid=full.full())
        return None

    def _bind_failed(self, iq, condition: str, text: str):
        self.bind_failures += 1
        self.send(error_reply(iq, condition, text))
        if self.bind_failures >= self.config.max_bind_attempts:
            self.stream_error("policy-violation", "too many failed bind attempts")

    # -- established -------------------------------------------------------------------

    def stanza_received(self, stanza: domish.Element):
        if stanza.uri != self.content_namespace or stanza.name not in STANZAS:
            raise StreamError("unsupported-stanza-type")
        stanza["from"] = self.resource.jid.full()
        self.node.tally.stanzas_in[stanza.name] += 1
        try:
            if stanza.name == "iq":
                check_iq(stanza)
            elif stanza.name == "message":
                check_message(stanza)
            parse_jid(stanza.getAttribute("to"))
        except StanzaError as e:
            if stanza.getAttribute("type") != "error":
                self.node.tally.bounces[e.condition] += 1
                self.send(error_reply(stanza, e))
            return None
        return self.node.router.route(stanza, self.resource)

    def peer_name(self) -> str:
        if self.resource is not None:
            return self.resource.jid.full()
        return f"{self.username}@{self.domain}" if self.username is not None else super().peer_name()

    def send_raw(self, data: bytes) -> None:
        self.node.tally.written[data[1]] += 1
        if self._held is not None:
            self._held.append(data)
        else:
            super().send_raw(data)

    def hold_output(self) -> None:
        """Queue routed stanzas until ``release_output``: stored messages go out before live ones."""
        if self._held is None:
            self._held = []

    def send_ahead(self, data: bytes) -> None:
        """Write now, ahead of the held output: the stored messages themselves."""
        super().send_raw(data)

    def release_output(self) -> None:
        held, self._held = self._held or [], None
        if held:
            super().send_raw(b"".join(held))

    def send_if_available(self, data: bytes) -> None:
        """Presence broadcasts: only while this session is available (RFC 6121 §4.4.2)."""
        if self.resource is not None and self.resource.available:
            self.send_raw(data)

    def send_if_asked(self, flag: str, data: bytes) -> None:
        """Pushes: only if this session asked for them (``flag``, e.g. roster_requested, IM-05)."""
        if self.resource is not None and getattr(self.resource, flag, False):
            self.send_raw(data)

    def ping_peer(self):
        self.send(ping_request(self.domain))

    # -- the end ----------------------------------------------------------------------

    def stream_ended(self, condition: str | None):
        """Gone as soon as either side closed the stream, while TCP may still wait for the peer (PRES-05)."""
        self._end_resource()

    def connectionLost(self, reason=protocol.connectionDone):
        super().connectionLost(reason)
        self._end_resource()

    def _end_resource(self):
        resource, self.resource = self.resource, None
        if resource is not None:
            self.node.resource_ended(resource)


class RefusedStream(ServerStream):
    """A connection over the node's limits: resource-constraint before anything is parsed, then TCP closes."""

    def __init__(self, server, reason: str):
        super().__init__(server)
        self.reason = reason

    def connectionMade(self):
        self.refuse("resource-constraint", self.reason)

    def dataReceived(self, data: bytes):
        """Nothing the peer says matters any more."""
