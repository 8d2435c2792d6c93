"""XEP-0115 verification strings from the XEP's own examples, and the cache's trust rule."""

from __future__ import annotations

import asyncio

import pytest

from xmppd.protocol.xml import parse_fragment
from xmppd.storage.memory import MemoryCapsStore
from xmppd.protocol import caps
from xmppd.util.caps import CapsCache

# XEP-0115 §5.2, "Simple Generation Example".
SIMPLE = """<query xmlns='http://jabber.org/protocol/disco#info'>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>"""
SIMPLE_S = (
    "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<"
    "http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
)

# XEP-0115 §5.3, "Complex Generation Example" (two languages, an extended form).
COMPLEX = """<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>"""
COMPLEX_S = (
    "client/pc/el/\u03a8 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<"
    "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
    "urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"
)


def test_simple_example() -> None:
    query = parse_fragment(SIMPLE)
    assert caps.verification_string(query) == SIMPLE_S
    assert caps.ver(query) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_complex_example_with_languages_and_a_form() -> None:
    query = parse_fragment(COMPLEX)
    assert caps.verification_string(query) == COMPLEX_S
    assert caps.ver(query) == "q07IKJEyjvHSyhy//CH0CxmKi8w="
    assert caps.verifies(query, "q07IKJEyjvHSyhy//CH0CxmKi8w=", "sha-1")


def test_order_of_the_answer_does_not_matter() -> None:
    shuffled = SIMPLE.replace("<feature var='http://jabber.org/protocol/caps'/>", "").replace(
        "</query>", "<feature var='http://jabber.org/protocol/caps'/></query>"
    )
    assert caps.ver(parse_fragment(shuffled)) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_a_forged_ver_does_not_verify() -> None:
    """The answer has one feature more than the announced ver covers (a +notify, say)."""
    forged = SIMPLE.replace("</query>", "<feature var='urn:xmpp:tune+notify'/></query>")
    assert not caps.verifies(parse_fragment(forged), "QgayPKawpkPSDYmwT/WM94uAlu0=", "sha-1")
    assert not caps.verifies(parse_fragment(SIMPLE), "QgayPKawpkPSDYmwT/WM94uAlu0=", "md5")  # not computed: not trusted


@pytest.mark.parametrize(
    "duplicate",
    [
        "<feature var='http://jabber.org/protocol/muc'/>",
        "<identity category='client' name='Exodus 0.9.1' type='pc'/>",
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>a</value></field></x>"
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>a</value></field></x>",
    ],
)
def test_duplicates_are_ill_formed(duplicate: str) -> None:
    """XEP-0115 §5.4: such an answer never verifies, whatever its hash."""
    query = parse_fragment(SIMPLE.replace("</query>", duplicate + "</query>"))
    with pytest.raises(caps.IllFormed):
        caps.verification_string(query)
    assert not caps.verifies(query, caps.ver(parse_fragment(SIMPLE)), "sha-1")


def test_a_form_whose_form_type_is_not_hidden_is_ignored() -> None:
    """XEP-0115 §5.4: skipped, not ill-formed."""
    extra = "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:example</value></field></x>"
    assert caps.ver(parse_fragment(SIMPLE.replace("</query>", extra + "</query>"))) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_cache_memo_and_store_are_bounded() -> None:
    """The node's memo forgets the oldest; the store refuses new vers once full; a ver learned
    elsewhere (another node, same store) is read from the store."""
    store = MemoryCapsStore()
    cache, other_node = CapsCache(store, size=2), CapsCache(store, size=2)
    for name in ("a", "b", "c"):
        asyncio.run(cache.learned(name, frozenset({name})))
    assert asyncio.run(store.get("a")) == ["a"] and asyncio.run(store.get("c")) is None  # full at two
    assert asyncio.run(other_node.get("b")) == {"b"}
    assert asyncio.run(cache.get("c")) == {"c"}  # this node's memo still has it
    assert asyncio.run(other_node.get("c")) is None
