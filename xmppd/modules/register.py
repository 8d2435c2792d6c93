"""XEP-0077 in-band registration: create an account, change its password, cancel it.

Off unless ``registration = true``. Before authentication only account creation
is possible; after it, the account's own password change and cancellation.
New accounts are rationed per stream and per address (``registrations_per_stream``,
``registration_interval``): one connection must not mint accounts by the hundred.
"""

from __future__ import annotations

from collections import OrderedDict
from weakref import WeakKeyDictionary

from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from xmppd.modules import ACCOUNT, SERVER, IQRequest, Module
from xmppd.protocol.scram import Credentials
from xmppd.protocol.stanzas import StanzaError
from xmppd.protocol.xml import NS_REGISTER_FEATURE
from xmppd.storage.interfaces import AccountExists
from xmppd.util import identifiers

NS_REGISTER = "jabber:iq:register"


class RegisterModule(Module):
    name = "register"
    server_features = (NS_REGISTER,)
    stream_features = {"pre-auth": (f"<register xmlns='{NS_REGISTER_FEATURE}'/>",)}
    pre_auth = True
    iq_handlers = {
        (SERVER, "get", NS_REGISTER): "form",
        (SERVER, "set", NS_REGISTER): "submit",
        (ACCOUNT, "get", NS_REGISTER): "form",
        (ACCOUNT, "set", NS_REGISTER): "submit",
    }

    def __init__(self, node):
        super().__init__(node)
        self._per_stream: WeakKeyDictionary[object, int] = WeakKeyDictionary()  # accounts each stream registered
        self._last_by_address: OrderedDict[str, float] = OrderedDict()  # oldest registration first

    def enabled(self) -> bool:
        return self.node.config.registration

    # -- the rate of new accounts -----------------------------------------------------------

    def _admit(self, stream) -> None:
        """At most registrations_per_stream accounts per stream (not-allowed: that stream is done),
        one per registration_interval per address on this node (resource-constraint: wait).
        Counted on admission, before anything is awaited, so parallel streams cannot all slip in."""
        config = self.node.config
        if self._per_stream.get(stream, 0) >= config.registrations_per_stream:
            raise StanzaError("not-allowed", text=f"a stream registers at most {config.registrations_per_stream} accounts")
        now, interval, address = self.node.clock.seconds(), config.registration_interval, _address(stream)
        while self._last_by_address and next(iter(self._last_by_address.values())) <= now - interval:
            self._last_by_address.popitem(last=False)
        if address in self._last_by_address:
            raise StanzaError("resource-constraint", text=f"one account per {interval} seconds from an address")
        self._per_stream[stream] = self._per_stream.get(stream, 0) + 1
        if interval:
            self._last_by_address[address] = now

    def _readmit(self, stream) -> None:
        """An admitted attempt that created nothing (the name was taken) does not count."""
        self._per_stream[stream] -= 1
        self._last_by_address.pop(_address(stream), None)

    def form(self, request: IQRequest):
        query = domish.Element((NS_REGISTER, "query"))
        if request.sender is None:
            query.addElement("instructions", content="Choose a username and password.")
            query.addElement("username")
        else:
            query.addElement("registered")
            query.addElement("username", content=request.sender.user)
        query.addElement("password")
        return query

    async def submit(self, request: IQRequest):
        query = request.payload
        if request.sender is not None and request.sender.userhost() != request.target.userhost() and request.target.user:
            raise StanzaError("forbidden")
        if query.remove is not None:
            return await self.cancel(request)
        username, password = _text(query.username), _text(query.password)
        if not username or not password:
            raise StanzaError("not-acceptable", text="username and password are required")
        limit = self.node.config.max_password_bytes
        if not identifiers.fits(password, limit):  # before SASLprep and the key derivation
            raise StanzaError("not-acceptable", text=f"passwords are limited to {limit} bytes")
        if not identifiers.fits(username):  # before nodeprep: it is linear in the input and slow
            raise StanzaError("not-acceptable", text="usernames are limited to 1023 bytes")
        try:
            localpart = jid.nodeprep.prepare(username)
        except UnicodeError:
            raise StanzaError("jid-malformed", text="invalid username") from None
        if not identifiers.fits(localpart):  # preparation can lengthen it; such an account could never bind
            raise StanzaError("not-acceptable", text="usernames are limited to 1023 bytes")
        if request.sender is None:
            self._admit(request.stream)  # before the costly key derivation
        credentials = Credentials.from_password(password, self.node.config.scram_iterations)
        accounts = self.node.storage.accounts
        if request.sender is None:
            try:
                await accounts.create(localpart, request.stream.domain, credentials)
            except AccountExists:
                self._readmit(request.stream)
                raise StanzaError("conflict", text="username taken") from None
        elif localpart != request.sender.user:
            raise StanzaError("not-allowed", text="you can only change your own password")
        else:
            await accounts.set_credentials(localpart, request.sender.host, credentials)
            # The other sessions authenticated with the old password: they must start over.
            others = [r for r in self.node.directory.resources(request.sender.userhost()) if r.jid != request.sender]
            self.node.clock.callLater(0, _end_streams, others, "reset", "the password changed")
        return None

    async def cancel(self, request: IQRequest):
        if request.sender is None:
            raise StanzaError("not-authorized")
        await self.node.storage.delete_account(request.sender.user, request.sender.host)
        rosters = self.node.modules.module("roster")
        if rosters is not None:
            rosters.forget(request.sender.userhost())
        self.node.cluster.account_changed(request.sender.userhost())  # other nodes' copies go too
        await self.node.cluster.forget_account(request.sender.userhost())
        resources = self.node.directory.resources(request.sender.userhost())
        self.node.clock.callLater(0, _end_streams, resources, "not-authorized", "account removed")
        return None


def _end_streams(resources, condition: str, text: str) -> None:
    """After the IQ result went out: end those sessions' streams."""
    for resource in resources:
        if resource.stream is not None:
            resource.stream.stream_error(condition, text)


def _address(stream) -> str:
    return stream.transport.getPeer().host


def _text(element) -> str:
    return str(element).strip() if element is not None else ""
