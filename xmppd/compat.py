"""Make wokkel 18.0.0 importable on current Twisted, and bound Twisted's JID cache.

Imported by ``xmppd/__init__.py`` before anything else touches wokkel:

* wokkel imports ``twisted.python.compat._PY3`` (gone since Twisted 21) and
  ``twisted.python.constants`` (gone since Twisted 24.11; the same names now
  live in ``constantly``).
* ``jid.internJID`` keeps every JID it ever saw; with many distinct senders
  that is an unbounded leak, so it is replaced by an LRU.
* Twisted's stringprep profiles are pure Python (~60 us per part, linear in
  the input); the same localparts and domains come back all the time, so their
  results are kept in LRUs, and printable ASCII resources (every generated one)
  skip resourceprep, which leaves them unchanged (RFC 3920 App. B); printable
  ASCII localparts skip nodeprep, which only lowercases them or refuses one of
  its nine prohibited characters (App. A): the first login of every account
  prepared its name in full (~50 us).
* Every profile refuses (UnicodeError, as for any unpreparable string) a part
  over 1023 bytes before preparing it, so no path to a JID can spend CPU or
  cache memory on one (CORE-49).

Each of these caches is bounded in bytes as well as in entries
(``limit_address_caches``, option address_cache_mb).
"""

import sys
import types

import constantly
from twisted.python import compat as _compat
from twisted.words.protocols.jabber import jid as _jid

from xmppd.util import identifiers
from xmppd.util.lru import SizedLRU, memoize, size_of_strings

INTERN_CACHE_SIZE = 8192
PREP_CACHE_SIZE = 16384
DEFAULT_CACHE_BYTES = 4 << 20
JID_OVERHEAD = 200  # bytes of a JID object and its attribute dict, beyond its strings

ADDRESS_CACHES: list[SizedLRU] = []


def address_cache(max_entries: int, size_of=size_of_strings) -> SizedLRU:
    """A new cache of prepared addresses, bounded by ``limit_address_caches`` like the others."""
    cache = SizedLRU(max_entries, DEFAULT_CACHE_BYTES, size_of)
    ADDRESS_CACHES.append(cache)
    return cache


def limit_address_caches(max_bytes: int) -> None:
    """The node's budget, in bytes, for each cache of prepared addresses."""
    for cache in ADDRESS_CACHES:
        cache.max_bytes = max_bytes
        cache.shrink()


def size_of_jid(key: str, made: _jid.JID) -> int:
    parts = (made.user, made.host, made.resource)
    return sys.getsizeof(key) + JID_OVERHEAD + sum(sys.getsizeof(part) for part in parts if part is not None)


def _install_constants_module() -> None:
    if "twisted.python.constants" in sys.modules:
        return
    module = types.ModuleType("twisted.python.constants")
    for name in constantly.__all__:
        setattr(module, name, getattr(constantly, name))
    sys.modules["twisted.python.constants"] = module


def _fast_resourceprep(prepare):
    def resourceprep(resource: str) -> str:
        if resource.isascii() and resource.isprintable():
            return resource
        return prepare(resource)

    return resourceprep


NODEPREP_PROHIBITED_ASCII = frozenset(" \"&'/:<>@")  # space (C.1.1) and nodeprep's own (App. A.5)


def _fast_nodeprep(prepare):
    """Printable ASCII has nothing to map but case, nothing unassigned and no bidi: only a
    prohibited character needs the profile, which refuses it."""

    def nodeprep(node: str) -> str:
        if node.isascii() and node.isprintable() and NODEPREP_PROHIBITED_ASCII.isdisjoint(node):
            return sys.intern(node.lower())  # one copy of a user's name for the stream, its JIDs and its roster
        return prepare(node)

    return nodeprep


def _length_checked(prepare):
    def bounded(part: str) -> str:
        if not identifiers.fits(part):
            raise UnicodeError("JID part longer than 1023 bytes")
        return prepare(part)

    return bounded


def _remembered(prepare):
    return memoize(prepare, address_cache(PREP_CACHE_SIZE))


def _remember_stringprep() -> None:
    if hasattr(_jid.nodeprep.prepare, "wrapped"):
        return
    _jid.nodeprep.prepare = _length_checked(_fast_nodeprep(_remembered(_jid.nodeprep.prepare)))
    _jid.nameprep.prepare = _length_checked(_remembered(_jid.nameprep.prepare))
    _jid.resourceprep.prepare = _length_checked(_fast_resourceprep(_remembered(_jid.resourceprep.prepare)))
    for profile in (_jid.nodeprep, _jid.nameprep, _jid.resourceprep):
        profile.prepare.wrapped = True


def install() -> None:
    _compat._PY3 = True
    _install_constants_module()
    if not hasattr(_jid.internJID, "cache"):
        _jid.internJID = memoize(_jid.JID, address_cache(INTERN_CACHE_SIZE, size_of_jid))
    _remember_stringprep()


install()
