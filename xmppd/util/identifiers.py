"""Identifier lengths, measured on the raw string before any preparation (CORE-49).

Stringprep is pure Python and linear in its input: a 200 KB localpart cost a
second of reactor CPU, and its own size again in the caches of prepared
strings. RFC 7622 §3 allows at most 1023 bytes per part, so every identifier a
peer hands us (stream header, SASL names, stanza addresses, roster and privacy
items, resources, usernames) is measured here first, in microseconds, and an
over-long one is refused without being prepared.
"""

from __future__ import annotations

MAX_PART = 1023  # bytes of UTF-8 in a localpart, domainpart or resourcepart
MAX_JID = 3 * MAX_PART + 2  # the three parts and their two separators
MAX_UTF8 = 4  # bytes one character can take


def fits(text: str | None, limit: int = MAX_PART) -> bool:
    """Whether ``text`` is at most ``limit`` bytes of UTF-8, without encoding a long one."""
    if text is None or len(text) * MAX_UTF8 <= limit:
        return True
    if len(text) > limit:  # every character takes at least one byte
        return False
    return len(text.encode("utf-8", "surrogatepass")) <= limit


def jid_fits(value: str) -> bool:
    """Whether each part of the unprepared JID ``value`` fits, split as Twisted's jid.parse splits it."""
    if len(value) * MAX_UTF8 <= MAX_PART:  # most JIDs: even all of it would fit in one part
        return True
    if not fits(value, MAX_JID):
        return False
    head, _, resource = value.partition("/")
    local, _, domain = head.partition("@")  # without '@' the whole head is the domain
    return fits(local) and fits(domain) and fits(resource)
