"""A deliberately small blocking XMPP client (stdlib ssl + domish) for tests that
must not share the reactor: fuzzing a node that runs as its own process."""

from __future__ import annotations

import base64
import socket
import ssl

from twisted.words.xish import domish

NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>"


class StreamClosed(Exception):
    def __init__(self, condition: str | None):
        super().__init__(condition)
        self.condition = condition


class BlockingStream:
    def __init__(self, host: str, port: int, domain: str = "localhost", timeout: float = 10):
        self.domain = domain
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.queue: list[domish.Element] = []
        self._reset_parser()

    def _reset_parser(self):
        self.parser = domish.elementStream()
        self.parser.DocumentStartEvent = lambda root: None
        self.parser.ElementEvent = self.queue.append
        self.parser.DocumentEndEvent = lambda: self.queue.append(None)

    def send(self, data: str | bytes):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def restart(self):
        self._reset_parser()
        self.send(HEADER.format(domain=self.domain))

    def next(self) -> domish.Element:
        """The next top-level element; StreamClosed when the stream ends (with its error condition)."""
        while not self.queue:
            data = self.sock.recv(65536)
            if not data:
                self.queue.append(None)
                break
            self.parser.parse(data)
        element = self.queue.pop(0)
        if element is None:
            raise StreamClosed(None)
        if element.name == "error" and element.uri == "http://etherx.jabber.org/streams":
            raise StreamClosed(element.firstChildElement().name if element.firstChildElement() else None)
        return element

    def start_tls(self) -> domish.Element:
        """Header, STARTTLS, header again: returns the features offered under TLS."""
        self.restart()
        self.next()  # features
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        assert self.next().name == "proceed"
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock, server_hostname=self.domain)
        self.restart()
        return self.next()

    def auth(self, mechanism: str, initial: bytes) -> domish.Element:
        """<auth/> with an initial response: returns the node's answer (challenge, success or failure)."""
        token = base64.b64encode(initial).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mechanism}'>{token}</auth>")
        return self.next()

    def authenticate(self, user: str, password: str) -> domish.Element:
        """STARTTLS and SASL PLAIN: the server's answer, <success/> or <failure/>."""
        self.start_tls()
        return self.auth("PLAIN", f"\0{user}\0{password}".encode())

    def login(self, user: str, password: str) -> str:
        """STARTTLS, SASL PLAIN, bind: returns the bound full JID."""
        assert self.authenticate(user, password).name == "success"
        self.restart()
        self.next()
        self.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        bound = self.next()
        assert bound["type"] == "result", bound.toXml()
        return str(bound.bind.jid)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
