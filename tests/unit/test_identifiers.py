"""Identifier lengths before preparation, and the byte-bounded caches of prepared addresses (CORE-49)."""

from __future__ import annotations

import time

import pytest
from twisted.words.protocols.jabber import jid

from xmppd import compat
from xmppd.util import identifiers
from xmppd.util.lru import SizedLRU, memoize


@pytest.mark.parametrize(
    ("text", "fits"),
    [
        (None, True),
        ("", True),
        ("a" * 1023, True),
        ("a" * 1024, False),
        ("é" * 511 + "a", True),  # 1023 bytes
        ("é" * 512, False),  # 1024 bytes in 512 characters
        ("\U0001f600" * 255 + "abc", True),
        ("\U0001f600" * 256, False),
        ("\udcff" * 300, True),  # a lone surrogate counts, it does not raise
    ],
)
def test_fits_counts_utf8_bytes(text, fits):
    assert identifiers.fits(text) is fits


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        ("a" * 1023 + "@" + "d" * 1023 + "/" + "r" * 1023, True),
        ("a" * 1024 + "@d", False),
        ("u@" + "d" * 1024, False),
        ("u@d/" + "r" * 1024, False),
        ("d" * 1024, False),  # a domain alone
        ("d/" + "r@" * 511, True),  # '@' after the first '/' belongs to the resource (1022 bytes)
        ("d/" + "r@" * 512, False),
        ("a" * 1023 + "@" + "d" * 1023 + "/" + "r" * 1023 + "x", False),  # over the whole JID's bound
    ],
)
def test_jid_fits_splits_like_twisted(value, fits):
    assert identifiers.jid_fits(value) is fits


def test_a_200_kb_part_costs_microseconds_and_is_refused_by_every_profile():
    huge = "é" + "a" * 200_000
    started = time.process_time()
    for prepare in (jid.nodeprep.prepare, jid.nameprep.prepare, jid.resourceprep.prepare):
        with pytest.raises(UnicodeError):
            prepare(huge)
    with pytest.raises(jid.InvalidFormat):
        jid.JID(f"{huge}@localhost")
    assert time.process_time() - started < 0.05  # ~0.5 s for one part before the bound


def test_sized_lru_drops_the_least_recently_used_to_stay_within_bytes():
    cache = SizedLRU(max_entries=100, max_bytes=3000, size_of=lambda key, value: 1000 - 100)  # 1000 with the overhead
    remember = memoize(str.upper, cache)
    for key in "abc":
        remember(key)
    assert remember("a") == "A"  # a hit: now the most recently used
    remember("d")
    assert (list(cache.entries), cache.bytes) == (["c", "a", "d"], 3000)


def test_sized_lru_keeps_the_entry_bound_and_skips_what_can_never_fit():
    cache = SizedLRU(max_entries=2, max_bytes=10_000)
    remember = memoize(str.upper, cache)
    for key in ["a", "b", "c", "x" * 20_000]:
        remember(key)
    assert list(cache.entries) == ["b", "c"]


def test_lowering_the_bound_shrinks_the_address_caches():
    parse = memoize(str.upper, compat.address_cache(1000))
    for n in range(50):
        parse(f"name{n}")
    try:
        compat.limit_address_caches(2000)
        assert all(cache.bytes <= 2000 for cache in compat.ADDRESS_CACHES)
        assert parse("name49") == "NAME49"
    finally:
        compat.limit_address_caches(compat.DEFAULT_CACHE_BYTES)
        compat.ADDRESS_CACHES.remove(parse.cache)


def _full_nodeprep(part: str) -> str | type[UnicodeError]:
    """Twisted's own profile, under the shortcut installed on the instance."""
    try:
        return type(jid.nodeprep).prepare(jid.nodeprep, part)
    except UnicodeError:
        return UnicodeError


def _fast_nodeprep(part: str) -> str | type[UnicodeError]:
    try:
        return jid.nodeprep.prepare(part)
    except UnicodeError:
        return UnicodeError


PRINTABLE_ASCII = [chr(c) for c in range(0x20, 0x7F)]


def test_ascii_localparts_skip_nodeprep_with_its_results():
    """Every printable ASCII pair (each character before and after every other, case included)
    prepares as the full profile prepares it, prohibited characters refused."""
    pairs = [a + b for a in PRINTABLE_ASCII for b in PRINTABLE_ASCII]
    for part in [*PRINTABLE_ASCII, *pairs, "User1", "Alice.Liddell-2", "juliet@", "o'hara", "a b", ""]:
        assert _fast_nodeprep(part) == _full_nodeprep(part), part
    assert jid.JID("Romeo@Example.NET/Orchard").user == "romeo"


@pytest.mark.parametrize("part", ["ÄLICE", "ﬁnn", "a\u00adb", "tab\tx", "\u0627\u0644", "x\x7f"])
def test_localparts_beyond_printable_ascii_still_take_the_profile(part):
    assert _fast_nodeprep(part) == _full_nodeprep(part)
