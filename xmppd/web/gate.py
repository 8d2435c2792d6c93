"""The bearer token in front of everything on the HTTP listener beyond health and metrics.

No ``http_token`` configured: those endpoints do not exist (404), so a node
never serves session lists or takes admin actions by default. Configured: a
request without ``Authorization: Bearer <token>`` gets 403. Each answer is one line.
"""

from __future__ import annotations

import hmac

from twisted.web import resource


def refuse(request, code: int, line: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return line.encode() + b"\n"


class Refusal(resource.Resource):
    isLeaf = True

    def __init__(self, code: int, line: str):
        super().__init__()
        self.code, self.line = code, line

    def render(self, request):
        return refuse(request, self.code, self.line)


OFF = Refusal(404, "not enabled: set http_token in the configuration")
FORBIDDEN = Refusal(403, "forbidden: send Authorization: Bearer <http_token>")


def presents(request, token: str) -> bool:
    header = request.getHeader(b"authorization") or b""
    scheme, _, given = header.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token.encode())


class TokenGate(resource.Resource):
    """``/api/...``: each child only with the token, read from the configuration at each request
    (``xmppctl reload`` may set, change or clear it)."""

    def __init__(self, config, children: dict[bytes, resource.Resource]):
        super().__init__()
        self.config, self.children_by_name = config, children

    def getChild(self, path: bytes, request):
        token = self.config.http_token
        if not token:
            return OFF
        child = self.children_by_name.get(path)
        if child is None:
            return Refusal(404, "no such endpoint")
        return child if presents(request, token) else FORBIDDEN
