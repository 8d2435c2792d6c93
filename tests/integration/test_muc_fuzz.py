"""Random MUC stanzas on a live stream against a node process (hypothesis): never a crash, a hang
or a traceback, and every error carries a defined condition (the checks of test_fuzz)."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.integration.blocking_client import StreamClosed
from tests.integration.test_fuzz import STREAM_CONDITIONS, fuzz_node, fuzz_session, quote  # noqa: F401  (fixture)

ROOM = "r@conference.localhost"
ENTER = (
    f"<presence to='{ROOM}/fuzz'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    f"<iq type='set' id='cfg' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>"
    "<x xmlns='jabber:x:data' type='submit'/></query></iq>"
)

values = st.one_of(
    st.sampled_from(["", "0", "-1", "1", "99999999999999999999", "true", "bogus", "fuzz", "fuzz@localhost", "a@b@c", "@", "/",
                     "owner", "admin", "member", "outcast", "none", "moderator", "participant", "visitor",
                     "1970-01-01T00:00:00Z", "0001-01-01T00:00:00", f"{ROOM}/fuzz", ROOM]),
    st.text(max_size=20),
)
targets = st.sampled_from([ROOM, f"{ROOM}/fuzz", f"{ROOM}/other", f"{ROOM}/ ", "conference.localhost", "x@conference.localhost/n"])
payloads = st.sampled_from([
    "<x xmlns='http://jabber.org/protocol/muc'><history maxchars='{v}' maxstanzas='{v}' seconds='{v}' since='{v}'/><password>{v}</password></x>",
    "<x xmlns='http://jabber.org/protocol/muc#user'><invite to='{v}'><reason>{v}</reason></invite><decline to='{v}'/></x>",
    "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='{v}' role='{v}' jid='{v}'/><status code='{v}'/></x>",
    "<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='{v}' role='{v}' jid='{v}' affiliation='{v}'><reason>{v}</reason></item></query>",
    "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='{v}'><reason>{v}</reason></destroy></query>",
    "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='{v}'><field var='muc#roomconfig_{v}' type='{v}'><value>{v}</value><value>{v}</value></field></x></query>",
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>"
    "<field var='muc#{v}'><value>{v}</value></field><field var='muc#request_allow'><value>{v}</value></field></x>",
    "<query xmlns='http://jabber.org/protocol/disco#info' node='{v}'/>",
    "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='{v}'><field var='FORM_TYPE'><value>{v}</value></field>"
    "<field var='muc#register_roomnick' type='{v}'><value>{v}</value><value>{v}</value></field></x></query>",
    "<subject>{v}</subject>",
    "<body>{v}</body>",
    "<error type='cancel'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    "<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
])


@st.composite
def muc_stanzas(draw) -> bytes:
    name = draw(st.sampled_from(["presence", "message", "iq"]))
    kinds = {"presence": [None, "unavailable", "error", "probe"], "message": ["groupchat", "normal", "chat", "error", None],
             "iq": ["get", "set", "result", "error"]}[name]
    kind = draw(st.sampled_from(kinds))
    template = draw(payloads)
    body = template.replace("{v}", "{}").format(*(quote(draw(values)) for _ in range(template.count("{v}"))))
    typed = f" type='{kind}'" if kind else ""
    return f"<{name} to='{quote(draw(targets))}' id='f'{typed}>{body}</{name}>".encode("utf-8", "surrogatepass")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.lists(muc_stanzas(), min_size=1, max_size=3))
@example(data=[f"<iq to='{ROOM}/fuzz' id='f' type='error'/>".encode()])  # once relayed to the occupant as it was
def test_random_muc_stanzas_never_crash_or_hang_the_node(fuzz_node, data):
    process, port = fuzz_node
    session = fuzz_session(port)
    try:
        for _ in session.answers(ENTER.encode() + b"".join(data)):
            pass
    except StreamClosed as closed:
        assert closed.condition in STREAM_CONDITIONS and closed.condition != "internal-server-error"
        session.drop()
    assert process.poll() is None
