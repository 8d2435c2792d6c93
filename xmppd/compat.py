"""Make wokkel 18.0.0 importable on current Twisted, and bound Twisted's JID cache.

Imported by ``xmppd/__init__.py`` before anything else touches wokkel:

* wokkel imports ``twisted.python.compat._PY3`` (gone since Twisted 21) and
  ``twisted.python.constants`` (gone since Twisted 24.11; the same names now
  live in ``constantly``).
* ``jid.internJID`` keeps every JID it ever saw; with many distinct senders
  that is an unbounded leak, so it is replaced by an LRU of fixed size.
* Twisted's stringprep profiles are pure Python (~60 us per part); the same
  localparts and domains come back all the time, so their results are kept in
  bounded LRUs, and printable ASCII resources (every generated one) skip
  resourceprep, which leaves them unchanged (RFC 3920 App. B).
"""

import functools
import sys
import types
from collections import OrderedDict

import constantly
from twisted.python import compat as _compat
from twisted.words.protocols.jabber import jid as _jid

INTERN_CACHE_SIZE = 8192
PREP_CACHE_SIZE = 16384


def _install_constants_module() -> None:
    if "twisted.python.constants" in sys.modules:
        return
    module = types.ModuleType("twisted.python.constants")
    for name in constantly.__all__:
        setattr(module, name, getattr(constantly, name))
    sys.modules["twisted.python.constants"] = module


def _bounded_intern(size: int):
    cache: OrderedDict[str, _jid.JID] = OrderedDict()

    def internJID(jidstring: str) -> _jid.JID:
        found = cache.get(jidstring)
        if found is not None:
            cache.move_to_end(jidstring)
            return found
        made = _jid.JID(jidstring)
        cache[jidstring] = made
        if len(cache) > size:
            cache.popitem(last=False)
        return made

    internJID.cache = cache
    return internJID


def _fast_resourceprep(prepare):
    def resourceprep(resource: str) -> str:
        if resource.isascii() and resource.isprintable():
            return resource
        return prepare(resource)

    return resourceprep


def _remember_stringprep() -> None:
    if hasattr(_jid.nodeprep.prepare, "cache_info"):
        return
    _jid.nodeprep.prepare = functools.lru_cache(maxsize=PREP_CACHE_SIZE)(_jid.nodeprep.prepare)
    _jid.nameprep.prepare = functools.lru_cache(maxsize=PREP_CACHE_SIZE)(_jid.nameprep.prepare)
    _jid.resourceprep.prepare = _fast_resourceprep(
        functools.lru_cache(maxsize=PREP_CACHE_SIZE)(_jid.resourceprep.prepare)
    )
    _jid.resourceprep.prepare.cache_info = True  # marks the profile as wrapped


def install() -> None:
    _compat._PY3 = True
    _install_constants_module()
    if not hasattr(_jid.internJID, "cache"):
        _jid.internJID = _bounded_intern(INTERN_CACHE_SIZE)
    _remember_stringprep()


install()
