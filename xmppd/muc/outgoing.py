"""What a room hands back to be delivered: stanzas, and a ``Fanout`` for one stanza to many.

A fanout is serialised once by whoever delivers it (docs/design.md, "How a stanza travels"); in a
cluster it is also the unit that crosses to each recipient node.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.words.xish import domish


@dataclass(frozen=True)
class Fanout:
    """One stanza (without 'to') for many real JIDs: whoever delivers it serialises it once."""

    stanza: domish.Element
    to: tuple[str, ...]


Outgoing = domish.Element | Fanout  # what a room's entry points return, in order


def readdressed(stanza: domish.Element, to: str) -> domish.Element:
    """A shallow copy with another 'to': the children are shared, never changed."""
    copy = domish.Element((stanza.uri, stanza.name))
    copy.attributes = dict(stanza.attributes)
    copy["to"] = to
    copy.children = list(stanza.children)
    return copy
