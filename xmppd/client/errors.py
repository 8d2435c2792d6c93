"""What the client library raises: every error is a ClientError."""

from __future__ import annotations

from twisted.internet import defer
from twisted.python import failure
from twisted.words.protocols.jabber import error as jabber_error
from twisted.words.xish import domish


class ClientError(Exception):
    """The connection or the login failed."""


class Unreachable(ClientError):
    """No server could be reached at any address the domain's SRV records (or the domain) name."""


class ConditionError(ClientError):
    """An error the peer or the server named with a condition."""

    def __init__(self, condition: str | None, text: str | None = None):
        # One line even when the peer's text has several: it ends up in logs and on terminals.
        super().__init__(": ".join(" ".join(part.split()) for part in (condition, text) if part))
        self.condition = condition
        self.text = text


class StreamErrorReceived(ConditionError):
    """The server ended the stream with <stream:error/>."""


class SASLError(ConditionError):
    """Authentication failed: ``condition`` is the server's <failure/> condition
    (unknown ones read as not-authorized, CLI-03), or None when we gave up
    ourselves (no usable mechanism, a server signature that does not verify)."""


def condition_of(stanza: domish.Element) -> tuple[str, str | None]:
    """The defined condition and the text of an error stanza."""
    parsed = jabber_error.exceptionFromStanza(stanza)
    return parsed.condition, parsed.text


class StanzaErrorReceived(ConditionError):
    """A stanza of type error came back (a bounced message, a refused request); ``stanza`` is it."""

    def __init__(self, stanza: domish.Element):
        super().__init__(*condition_of(stanza))
        self.stanza = stanza


class IQError(StanzaErrorReceived):
    """An IQ was answered with an error."""


class NoAnswer(ClientError, defer.TimeoutError):
    """Nothing came back in time: reads like the condition a server would have named."""

    condition = "remote-server-timeout"

    def __init__(self, what: str, timeout: float | None):
        super().__init__(f"remote-server-timeout: no answer to {what} within {timeout} s")


class IQTimeout(NoAnswer):
    """An IQ got no answer in time."""

    def __init__(self, iq: domish.Element, timeout: float | None):
        payload = iq.firstChildElement()
        what = f"{{{payload.uri}}}{payload.name}" if payload is not None else "iq"
        super().__init__(f"{what} from {iq.getAttribute('to', 'the server')}", timeout)


def no_answer(what: str, timeout: float | None):
    """An errback turning a timed-out wait into NoAnswer."""

    def convert(reason: failure.Failure):
        reason.trap(defer.TimeoutError)
        if isinstance(reason.value, NoAnswer):
            return reason
        raise NoAnswer(what, timeout)

    return convert
