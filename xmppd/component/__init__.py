"""External components (XEP-0114): a component's domain as a service hosted on the router.

``service.ComponentService`` is the router's end of one configured component
domain: it hands stanzas to the component's stream when that stream is on
this node, forwards them over the node bus to the node that holds it, and
answers ``service-unavailable`` when no node does. ``claim`` keeps the rule
that a domain has one stream in the whole cluster. The stream itself (the
handshake, the checks on what the component sends) is ``xmppd.streams.component``.
See docs/components.md.
"""
