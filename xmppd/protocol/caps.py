"""XEP-0115 entity capabilities: the verification string both ends compute.

A client's presence carries ``<c hash ver node/>``; ``ver`` names its
disco#info (identities, features, extended forms). The client computes it
for what it answers (CLI-10); the server recomputes it before it believes a
client's answer for every client announcing the same ``ver`` (PEP-06, see
``xmppd.util.caps``). ``verification_string`` is XEP-0115 §5.1 with §5.4's
checks; only SHA-1 is computed, the algorithm the XEP makes mandatory.
"""

from __future__ import annotations

import base64
import hashlib

from twisted.words.xish import domish

NS_CAPS = "http://jabber.org/protocol/caps"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
XML_LANG = ("http://www.w3.org/XML/1998/namespace", "lang")
HASHES = {"sha-1": hashlib.sha1}


class IllFormed(ValueError):
    """A disco#info answer that XEP-0115 §5.4 says must not be cached."""


def _form(form: domish.Element) -> tuple[str, str] | None:
    """One extended form's FORM_TYPE and its part of S; None for a form §5.4 says to skip."""
    fields: dict[str, list[str]] = {}
    form_type = None
    for field in form.elements(NS_DATA, "field"):
        var = field.getAttribute("var")
        values = sorted(str(value) for value in field.elements(NS_DATA, "value"))
        if var == "FORM_TYPE":
            if form_type is not None or len(values) != 1:
                raise IllFormed("a form with more than one FORM_TYPE")
            if field.getAttribute("type") != "hidden":
                return None
            form_type = values[0]
        elif var is not None:
            fields[var] = values
    if form_type is None:
        return None
    return form_type, form_type + "<" + "".join(var + "<" + "".join(v + "<" for v in fields[var]) for var in sorted(fields))


def verification_string(query: domish.Element) -> str:
    """S of XEP-0115 §5.1 for a disco#info ``<query/>``; IllFormed for a duplicate identity,
    feature or FORM_TYPE (§5.4)."""
    identities = [
        "/".join((i.getAttribute("category", ""), i.getAttribute("type", ""), i.getAttribute(XML_LANG, ""), i.getAttribute("name", "")))
        for i in query.elements(NS_DISCO_INFO, "identity")
    ]
    features = [f.getAttribute("var", "") for f in query.elements(NS_DISCO_INFO, "feature")]
    forms = [found for found in map(_form, query.elements(NS_DATA, "x")) if found is not None]
    form_types = [form_type for form_type, _ in forms]
    for kind, names in (("identity", identities), ("feature", features), ("FORM_TYPE", form_types)):
        if len(set(names)) != len(names):
            raise IllFormed(f"a duplicate {kind}")
    return "".join(i + "<" for i in sorted(identities)) + "".join(f + "<" for f in sorted(features)) + "".join(text for _, text in sorted(forms))


def ver(query: domish.Element, algorithm: str = "sha-1") -> str:
    """The ``ver`` a client with this disco#info announces (base64 of the hash of S)."""
    digest = HASHES[algorithm](verification_string(query).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def verifies(query: domish.Element, announced: str, algorithm: str) -> bool:
    """Whether the answer hashes to the announced ``ver`` (False for an unknown algorithm)."""
    try:
        return algorithm in HASHES and ver(query, algorithm) == announced
    except IllFormed:
        return False


def features(query: domish.Element) -> frozenset[str]:
    return frozenset(f.getAttribute("var", "") for f in query.elements(NS_DISCO_INFO, "feature"))
