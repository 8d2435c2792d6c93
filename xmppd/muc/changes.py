"""Which parts of a room one or more stanzas changed: what its store has to rewrite.

A room records them as it goes, at the cost of a set insertion or a counter, so
that a groupchat costs its store one history append and nothing else; the
service takes them after each stanza (docs/muc.md, "Persistence").
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RoomChanges:
    config: bool = False  # the owner's configuration, or whether the room is locked
    subject: bool = False
    affiliations: set[str] = field(default_factory=set)  # bare JIDs (or domains) whose affiliation changed
    registrations: set[str] = field(default_factory=set)  # bare JIDs whose reserved nick changed
    occupants: set[str] = field(default_factory=set)  # nicks that came, went or changed
    history: int = 0  # messages appended to the history

    def __bool__(self) -> bool:
        return bool(self.history or self.beyond_history())

    def beyond_history(self) -> bool:
        """Anything but history messages: what a successor needs at once (a groupchat changes none of it)."""
        return bool(self.occupants or self.config or self.subject or self.affiliations or self.registrations)
