"""XEP-0163 Personal Eventing: every account's bare JID is a pubsub service (PEP-01..14).

The owner publishes; the server keeps each node's last items and notifies, as
headline messages from the bare JID to full JIDs, the owner's available
resources and those of contacts (and of local entities she shares directed
presence with) that the node admits (``NodeAccess``: access model and
affiliations) whose caps (XEP-0115) say ``<node>+notify``. What a ``ver``
means is learned by asking the client and kept only once its hash verifies
(``xmppd.protocol.caps``). Errors returned for notifications are absorbed here
(PEP-11); the owner manages affiliations and explicit subscriptions.

wokkel's ``PubSubRequest`` parses the requests. Its ``PubSubService`` is not
used: it observes an XML stream through XPath and hands its resource only the
requester's JID, while here the module table dispatches IQs and access needs
the owner's roster. ``PepRequest`` fixes what wokkel 18 leaves out for PEP.
"""

from __future__ import annotations

import functools
import itertools
import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace

from twisted.words.protocols.jabber.jid import JID, InvalidFormat, internJID
from twisted.words.xish import domish
from wokkel import data_form
from wokkel.pubsub import NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER, BadRequest, PubSubRequest, Unsupported

from xmppd.modules import ACCOUNT, IQRequest, Module
from xmppd.modules.pep_abroad import ABROAD, Filed, ResourcesAbroad, filed, filing
from xmppd.modules.roster import Account, RosterModule
from xmppd.protocol import caps
from xmppd.protocol.stanzas import StanzaError, addressed_copy, parse_jid
from xmppd.protocol.xml import NS_CLIENT, serialise
from xmppd.sessions import Resource
from xmppd.util.caps import CapsCache
from xmppd.util.aio import run_in_background

NS_PUBSUB_ERRORS = NS_PUBSUB + "#errors"
NS_PUBLISH_OPTIONS = NS_PUBSUB + "#publish-options"
NS_NODE_CONFIG = NS_PUBSUB + "#node_config"
ACCESS_MODELS = ("presence", "open", "roster", "whitelist")
NOTIFY = "+notify"
NOTHING_WANTED: frozenset[str] = frozenset()
FIXED = {  # what every node does, shown in its form; a form may repeat these values, not change them
    "pubsub#persist_items": ("boolean", "true"),
    "pubsub#deliver_payloads": ("boolean", "true"),
    "pubsub#send_last_published_item": ("list-single", "on_sub_and_presence"),
}
SERVED = {  # wokkel's request verb -> the method that serves it
    "publish": "publish", "items": "items", "retract": "retract", "create": "create", "delete": "delete",
    "purge": "purge", "configureGet": "configuration", "configureSet": "configure", "subscribe": "subscribe",
    "unsubscribe": "unsubscribe", "subscriptions": "own_subscriptions", "affiliations": "own_affiliations",
    "affiliationsGet": "node_affiliations", "affiliationsSet": "set_node_affiliations",
    "subscriptionsGet": "node_subscriptions", "subscriptionsSet": "set_node_subscriptions",
}  # fmt: skip
UNSUPPORTED = {  # the other verbs -> the XEP-0060 feature that <unsupported/> names
    "optionsGet": "subscription-options", "optionsSet": "subscription-options", "default": "retrieve-default",
}  # fmt: skip
FEATURES = (
    "access-open", "access-presence", "access-roster", "access-whitelist", "auto-create", "auto-subscribe", "config-node", "create-nodes",
    "delete-items", "delete-nodes", "filtered-notifications", "last-published", "manage-subscriptions", "member-affiliation",
    "modify-affiliations", "outcast-affiliation", "persistent-items", "presence-notifications", "publish", "publish-options",
    "purge-nodes", "retract-items", "retrieve-affiliations", "retrieve-items", "retrieve-subscriptions", "subscribe",
)  # fmt: skip
AFFILIATIONS = ("member", "outcast")  # besides the owner, what a PEP node knows; "none" removes one
NOTIFICATION_ID = "pep-event-"  # starts every notification's id, so a bounce is known as one (PEP-11)
_notification_numbers = itertools.count()  # with a per-process prefix: unique ids without a random read each
_NOTIFICATION_PREFIX = f"{NOTIFICATION_ID}{secrets.token_hex(4)}-"


def pubsub_error(condition: str, pubsub_condition: str, text: str | None = None, kind: str | None = None) -> StanzaError:
    """A stanza error with its XEP-0060 application condition. ``kind``: the error type, which
    Twisted knows only for RFC 3920's conditions (not policy-violation)."""
    return StanzaError(condition, type=kind, text=text, appCondition=domish.Element((NS_PUBSUB_ERRORS, pubsub_condition)))


def form_fields(form: data_form.Form | None) -> dict[str, list[str]]:
    """A submitted form's fields as text, whatever types wokkel gave its values."""
    if form is None:
        return {}
    return {var: [str(v).lower() if isinstance(v, bool) else str(v) for v in field.values] for var, field in form.fields.items()}


class PepRequest(PubSubRequest):
    """wokkel's request, plus what it does not parse in wokkel 18: the ``notify`` of a
    retract (XEP-0060 §7.2.2.1), ``<publish-options/>`` (XEP-0060 §7.1.5) and the
    entries of an owner's subscriptions set (§8.8.2, which wokkel reads as nothing);
    and ``max_items``, which wokkel takes when zero or negative."""

    _parameters = {
        **PubSubRequest._parameters,
        "retract": ["node", "itemIdentifiers", "notify"],
        "publish": ["node", "items", "publishOptions"],
        "subscriptionsSet": ["nodeOrEmpty", "subscriptionStates"],
    }
    notify = False
    publish_options: dict[str, list[str]] | None = None
    subscription_states: dict[JID, str] | None = None  # subscriptionsSet: JID -> 'subscribed' or 'none'

    @classmethod
    def of(cls, request: IQRequest) -> PepRequest:
        """The request: a plain publish, what PEP clients send all the time, read here; the
        rest by wokkel, whose generic parse (class-dict reflection, JIDs parsed again, the
        namespace stripped from the whole stanza) cost ~84k instructions a publish (callgrind)."""
        verbs = list(request.payload.elements())
        if len(verbs) == 1 and request.iq["type"] == "set":
            (verb,) = verbs
            if verb.name == "publish" and verb.uri == NS_PUBSUB and verb.hasAttribute("node"):
                parsed = cls("publish")
                parsed.nodeIdentifier = verb["node"]
                parsed.items = [item for item in verb.elements() if item.name == "item" and item.uri == NS_PUBSUB]
                return parsed
        return cls.fromElement(request.iq)

    def _parse_maxItems(self, verb: domish.Element) -> None:
        super()._parse_maxItems(verb)
        if self.maxItems is not None and self.maxItems < 1:
            raise BadRequest(text="max_items is a positive integer")

    def _parse_notify(self, verb: domish.Element) -> None:
        self.notify = verb.getAttribute("notify") in ("true", "1")

    def _parse_publishOptions(self, verb: domish.Element) -> None:
        for element in verb.parent.elements(NS_PUBSUB, "publish-options"):
            form = data_form.findForm(element, NS_PUBLISH_OPTIONS)
            if form is None or form.formType != "submit":
                raise BadRequest("invalid-options", text="publish-options need a submitted form")
            self.publish_options = form_fields(form)

    def _parse_subscriptionStates(self, verb: domish.Element) -> None:
        self.subscription_states = {}
        for element in verb.elements(NS_PUBSUB_OWNER, "subscription"):
            if not element.getAttribute("jid") or not element.getAttribute("subscription"):
                raise BadRequest(text="a subscription names a jid and its state")
            subscriber = internJID(element["jid"])
            if subscriber in self.subscription_states:
                raise BadRequest(text="one subscription per jid")
            self.subscription_states[subscriber] = element["subscription"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A node's configuration (PEP-03): XEP-0163's defaults, the fields clients set."""

    access_model: str = "presence"
    max_items: int = 1
    roster_groups_allowed: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    @functools.lru_cache(maxsize=1024)  # a few distinct configurations serve every node: parse each once
    def from_json(cls, text: str) -> NodeConfig:
        values = json.loads(text)
        return cls(values["access_model"], values["max_items"], tuple(values["roster_groups_allowed"]))

    def with_fields(self, fields: dict[str, list[str]], max_items: int) -> NodeConfig:
        """This configuration with a form's fields; bad-request + invalid-options for a field
        or value it cannot take (the node stays as it was)."""
        changed = self
        for var, values in fields.items():
            value = values[0] if len(values) == 1 else None
            if var == "FORM_TYPE":
                continue
            if var == "pubsub#access_model" and value in ACCESS_MODELS:
                changed = replace(changed, access_model=value)
            elif var == "pubsub#max_items" and (value == "max" or (value or "").isdigit() and 1 <= int(value) <= max_items):
                changed = replace(changed, max_items=max_items if value == "max" else int(value))
            elif var == "pubsub#roster_groups_allowed":
                changed = replace(changed, roster_groups_allowed=tuple(values))
            elif var in FIXED and value in (FIXED[var][1], "1" if FIXED[var][0] == "boolean" else None):
                continue
            else:
                raise pubsub_error("bad-request", "invalid-options", text=f"{var} cannot be {values!r} here")
        return changed

    def form(self, max_items: int) -> data_form.Form:
        """The node_config form (PEP-03): the fields clients set, then what every node does."""
        form = data_form.Form("form", formNamespace=NS_NODE_CONFIG)
        form.addField(data_form.Field("list-single", "pubsub#access_model", self.access_model, options=[data_form.Option(m) for m in ACCESS_MODELS]))
        form.addField(data_form.Field("text-single", "pubsub#max_items", str(self.max_items), desc=f"at most {max_items}"))
        form.addField(data_form.Field("list-multi", "pubsub#roster_groups_allowed", values=list(self.roster_groups_allowed)))
        for var, (kind, value) in FIXED.items():
            form.addField(data_form.Field(kind, var, value))
        return form


@dataclass(frozen=True, slots=True)
class NodeAccess:
    """Who may read one node (PEP-07): its access model over the owner's roster, and the
    affiliations the owner gave. An outcast is refused whatever the model; a member is
    admitted whatever the model, as XEP-0060 §4.1's table gives members items and
    subscriptions (on a ``whitelist`` node, members alone)."""

    account: Account
    config: NodeConfig
    affiliations: dict[str, str]

    def denied(self, requester: str) -> StanzaError | None:
        """The error this bare JID gets (PEP-07), or None if it may read."""
        if requester == self.account.bare:
            return None
        affiliation = self.affiliations.get(requester)
        if affiliation == "outcast":
            return StanzaError("forbidden", text="the owner bars you from this node")
        if affiliation == "member" or self.config.access_model == "open":
            return None
        item = self.account.item(requester)
        if self.config.access_model == "presence":
            if item is not None and item.subscription in ("from", "both"):
                return None
            return pubsub_error("not-authorized", "presence-subscription-required")
        if self.config.access_model == "roster":
            if item is not None and set(item.groups) & set(self.config.roster_groups_allowed):
                return None
            return pubsub_error("not-authorized", "not-in-roster-group")
        return pubsub_error("not-allowed", "closed-node")

    def admits(self, requester: str) -> bool:
        return self.denied(requester) is None

    def admitter(self) -> Callable[[str], bool]:
        """``admits``, for a notification's whole audience. Without affiliations the
        ``presence`` model is the roster's own presence check and ``open`` admits everyone,
        so the common node asks one dict per contact instead of walking ``denied``."""
        if not self.affiliations:
            if self.config.access_model == "presence":
                return self.account.shares_presence_with
            if self.config.access_model == "open":
                return _everyone
        return self.admits


def _everyone(peer: str) -> bool:
    return True


def announced_caps(presence: domish.Element | None) -> tuple[str, str, str | None] | None:
    """(node, ver, hash) of a presence's XEP-0115 ``<c/>``; hash is None for legacy caps."""
    if presence is None:
        return None
    for c in presence.elements(caps.NS_CAPS, "c"):
        if c.getAttribute("node") and c.getAttribute("ver"):
            return c["node"], c["ver"], c.getAttribute("hash")
    return None


def event(owner: str, *children: domish.Element) -> domish.Element:
    """A notification (PEP-04): a headline from the owner's bare JID, addressed per recipient,
    with an id that tells a bounce of it from any other error (PEP-11)."""
    message = domish.Element((NS_CLIENT, "message"))
    message["from"], message["type"], message["id"] = owner, "headline", f"{_NOTIFICATION_PREFIX}{next(_notification_numbers)}"
    body = message.addElement((NS_PUBSUB_EVENT, "event"))
    for child in children:
        body.addChild(child)
    return message


def node_element(uri: str, name: str, node: str) -> domish.Element:
    element = domish.Element((uri, name))
    element["node"] = node
    return element


def items_element(uri: str, node: str, items: Iterable[tuple[str, str]]) -> domish.Element:
    """``<items node><item id>payload</item>...</items>`` in the request's or the event's
    namespace. Each payload goes in as the XML text it is stored as (``payload_text``
    made it, so it is one well-formed element declaring its namespace): never parsed
    again, and serialised once per publish, not once per notification."""
    element = node_element(uri, "items", node)
    for item_id, payload_xml in items:
        item = element.addElement("item")
        item["id"] = item_id
        item.addRawXml(payload_xml)
    return element


def payload_text(payload: domish.Element) -> str:
    """A published payload as stored: standalone XML that declares its own namespace."""
    return serialise(payload, default_uri="")


class PepModule(Module):
    name = "pep"
    account_identities = (("pubsub", "pep"),)
    account_features = (NS_PUBSUB, *(f"{NS_PUBSUB}#{feature}" for feature in FEATURES))
    iq_handlers = {
        (ACCOUNT, "get", NS_PUBSUB): "serve",
        (ACCOUNT, "set", NS_PUBSUB): "serve",
        (ACCOUNT, "get", NS_PUBSUB_OWNER): "serve",
        (ACCOUNT, "set", NS_PUBSUB_OWNER): "serve",
    }
    hooks = {
        "presence-available": "available", "resource-ended": "ended", "iq-response": "caps_answer",
        "error-to-account": "bounced", "remote-resource-ended": "ended", "presence-out": ("sharing", 10),
        "presence-in": ("heard", 20),
    }  # fmt: skip

    def __init__(self, node):
        super().__init__(node)
        self.caps_cache = CapsCache(node.storage.caps, node.config.caps_cache_size)
        self._legacy: dict[str, tuple[str, frozenset[str]]] = {}  # full JID -> (ver, features) of caps that cannot be verified
        self._asking: dict[str, tuple[Resource, tuple[str, str, str | None], bool]] = {}  # IQ id -> what was asked
        self._wanted: dict[str, frozenset[str]] = {}  # full JID -> the nodes its caps want, of this node's resources
        self._interests: dict[str, tuple[domish.Element, frozenset[str]]] = {}  # full JID -> (presence, its wanted nodes)
        self.abroad = ResourcesAbroad(node.config.pep_remote_resources, node.config.max_resources)

    @property
    def rosters(self) -> RosterModule:
        return self.node.modules.module("roster")

    @property
    def store(self):
        return self.node.storage.pep

    # -- requests ---------------------------------------------------------------------------

    async def serve(self, request: IQRequest):
        try:
            parsed = PepRequest.of(request)
        except NotImplementedError:
            raise pubsub_error("feature-not-implemented", "unsupported") from None
        except InvalidFormat:
            raise pubsub_error("bad-request", "invalid-jid") from None
        if parsed.verb not in SERVED:
            raise Unsupported(UNSUPPORTED[parsed.verb])
        name = parsed.nodeIdentifier
        if name == "":
            raise pubsub_error("bad-request", "nodeid-required", text="a PEP node has a name")
        if name is not None and len(name.encode("utf-8")) > self.node.config.pep_max_node_name:
            raise StanzaError("not-acceptable", text=f"node names are limited to {self.node.config.pep_max_node_name} bytes")
        return await getattr(self, SERVED[parsed.verb])(request, parsed)

    async def _nodes(self, owner: JID) -> dict[str, NodeConfig]:
        return {name: NodeConfig.from_json(text) for name, text in (await self.store.nodes(owner.user, owner.host)).items()}

    async def _existing(self, owner: JID, name: str) -> NodeConfig:
        config = (await self._nodes(owner)).get(name)
        if config is None:
            raise StanzaError("item-not-found", text="no such node")
        return config

    async def _access(self, owner: JID, name: str, config: NodeConfig) -> NodeAccess:
        account = await self.rosters.account(owner.user, owner.host)
        return NodeAccess(account, config, await self.store.affiliations(owner.user, owner.host, name))

    async def _notification_state(self, owner: JID, name: str) -> tuple[dict[str, NodeConfig], Account, dict[str, str], list[str]]:
        """Every node's configuration, the owner's roster, and this node's affiliations and
        explicit subscribers: what a publish reads, in one storage call (one Redis round trip)."""
        configs, affiliations, subscribers = await self.store.node_state(owner.user, owner.host, name)
        account = await self.rosters.account(owner.user, owner.host)
        return {node: NodeConfig.from_json(text) for node, text in configs.items()}, account, affiliations, subscribers

    async def _listeners(self, owner: JID, name: str) -> tuple[NodeAccess, list[str]]:
        """An existing node's access and explicit subscribers, whom its retract, purge or
        delete tells (item-not-found if there is no such node)."""
        nodes, account, affiliations, subscribers = await self._notification_state(owner, name)
        if name not in nodes:
            raise StanzaError("item-not-found", text="no such node")
        return NodeAccess(account, nodes[name], affiliations), subscribers

    async def _create(self, owner: JID, name: str, nodes: dict[str, NodeConfig], config: NodeConfig) -> None:
        if len(nodes) >= self.node.config.pep_max_nodes:
            raise pubsub_error("not-allowed", "max-nodes-exceeded", text=f"an account has at most {self.node.config.pep_max_nodes} nodes")
        await self.store.put_node(owner.user, owner.host, name, config.to_json())

    async def publish(self, request: IQRequest, parsed: PepRequest):
        """PEP-02: auto-create, one payload per item, an id made when absent, everyone told."""
        request.require_own("only the owner publishes to a PEP node")
        if len(parsed.items) != 1:
            raise pubsub_error("bad-request", "item-required" if not parsed.items else "invalid-payload")
        (item,) = parsed.items
        payloads = list(item.elements())
        if len(payloads) != 1:
            raise pubsub_error("bad-request", "payload-required" if not payloads else "invalid-payload")
        item_id = item.getAttribute("id") or secrets.token_hex(8)
        payload_xml = payload_text(payloads[0])
        if len(payload_xml.encode("utf-8")) + len(item_id.encode("utf-8")) > self.node.config.pep_max_item_size:
            raise pubsub_error("not-acceptable", "payload-too-big", text=f"items are limited to {self.node.config.pep_max_item_size} bytes")
        owner, name = request.target, parsed.nodeIdentifier
        nodes, account, affiliations, subscribers = await self._notification_state(owner, name)
        config = nodes.get(name)
        options = parsed.publish_options or {}
        if config is None:
            config = NodeConfig().with_fields(options, self.node.config.pep_max_items)
            await self._create(owner, name, nodes, config)
        elif config.with_fields(options, self.node.config.pep_max_items) != config:
            raise pubsub_error("conflict", "precondition-not-met", text="the node's configuration differs from the publish-options")
        await self.store.put_item(owner.user, owner.host, name, item_id, payload_xml, config.max_items)
        content = items_element(NS_PUBSUB_EVENT, name, [(item_id, payload_xml)])
        await self._notify(owner, name, NodeAccess(account, config, affiliations), subscribers, content)
        answer = domish.Element((NS_PUBSUB, "pubsub"))
        answer.addChild(node_element(NS_PUBSUB, "publish", name)).addElement("item")["id"] = item_id
        return answer

    async def items(self, request: IQRequest, parsed: PepRequest):
        """PEP-07: the newest items first, to whoever the access model admits."""
        owner = request.target
        access = await self._access(owner, parsed.nodeIdentifier, await self._existing(owner, parsed.nodeIdentifier))
        denied = access.denied(request.sender.userhost())
        if denied is not None:
            raise denied
        items = await self.store.items(owner.user, owner.host, parsed.nodeIdentifier)
        if parsed.itemIdentifiers:
            items = [item for item in items if item[0] in parsed.itemIdentifiers]
        if parsed.maxItems:
            items = items[: parsed.maxItems]
        answer = domish.Element((NS_PUBSUB, "pubsub"))
        answer.addChild(items_element(NS_PUBSUB, parsed.nodeIdentifier, items))
        return answer

    async def retract(self, request: IQRequest, parsed: PepRequest):
        """PEP-09: the item goes; with notify, everyone who would get a publish hears of it."""
        request.require_own("only the owner retracts from a PEP node")
        owner, name = request.target, parsed.nodeIdentifier
        access, subscribers = await self._listeners(owner, name)
        if len(parsed.itemIdentifiers) != 1:
            raise pubsub_error("bad-request", "item-required")
        (item_id,) = parsed.itemIdentifiers
        if not await self.store.retract(owner.user, owner.host, name, item_id):
            raise StanzaError("item-not-found", text="no such item")
        if parsed.notify:
            items = node_element(NS_PUBSUB_EVENT, "items", name)
            items.addElement("retract")["id"] = item_id
            await self._notify(owner, name, access, subscribers, items)
        return None

    async def create(self, request: IQRequest, parsed: PepRequest):
        request.require_own("only the owner creates PEP nodes")
        owner, name = request.target, parsed.nodeIdentifier
        if name is None:
            raise pubsub_error("not-acceptable", "nodeid-required", text="a PEP node needs a name")
        nodes = await self._nodes(owner)
        if name in nodes:
            raise StanzaError("conflict", text="the node exists")
        await self._create(owner, name, nodes, NodeConfig().with_fields(form_fields(parsed.options), self.node.config.pep_max_items))
        return None

    async def delete(self, request: IQRequest, parsed: PepRequest):
        """PEP-08: the node and its items go; whoever would get a publish hears of it."""
        request.require_own("only the owner deletes PEP nodes")
        owner, name = request.target, parsed.nodeIdentifier
        access, subscribers = await self._listeners(owner, name)
        await self.store.delete_node(owner.user, owner.host, name)
        await self._notify(owner, name, access, subscribers, node_element(NS_PUBSUB_EVENT, "delete", name))
        return None

    async def purge(self, request: IQRequest, parsed: PepRequest):
        request.require_own("only the owner purges PEP nodes")
        owner, name = request.target, parsed.nodeIdentifier
        access, subscribers = await self._listeners(owner, name)
        await self.store.purge(owner.user, owner.host, name)
        await self._notify(owner, name, access, subscribers, node_element(NS_PUBSUB_EVENT, "purge", name))
        return None

    @staticmethod
    def _subscriber(request: IQRequest, parsed: PepRequest) -> JID:
        """The JID to (un)subscribe: the requester's own, bare or full (else bad-request + invalid-jid)."""
        if parsed.subscriber.userhost() != request.sender.userhost():
            raise pubsub_error("bad-request", "invalid-jid", text="you can only subscribe yourself")
        return parsed.subscriber

    async def subscribe(self, request: IQRequest, parsed: PepRequest):
        """PEP-08: for entities that are no contacts (open nodes) or want events without caps;
        the newest item follows at once (PEP-05)."""
        owner, name = request.target, parsed.nodeIdentifier
        subscriber = self._subscriber(request, parsed)
        access = await self._access(owner, name, await self._existing(owner, name))
        denied = access.denied(subscriber.userhost())
        if denied is not None:
            raise denied
        await self._subscribe(owner, name, subscriber)
        items = await self.store.items(owner.user, owner.host, name)
        if items:
            self._send_to_subscriber(access.account.bare, items_element(NS_PUBSUB_EVENT, name, items[:1]), subscriber.full())
        answer = domish.Element((NS_PUBSUB, "pubsub"))
        subscription = answer.addChild(node_element(NS_PUBSUB, "subscription", name))
        subscription["jid"], subscription["subscription"] = subscriber.full(), "subscribed"
        return answer

    async def _subscribe(self, owner: JID, name: str, subscriber: JID) -> None:
        if not await self.store.subscribe(owner.user, owner.host, name, subscriber.full(), self.node.config.pep_max_subscribers):
            raise pubsub_error("policy-violation", "too-many-subscriptions", text="the node has as many subscribers as it may", kind="wait")

    async def unsubscribe(self, request: IQRequest, parsed: PepRequest):
        owner, name = request.target, parsed.nodeIdentifier
        subscriber = self._subscriber(request, parsed)
        await self._existing(owner, name)
        if not await self.store.unsubscribe(owner.user, owner.host, name, subscriber.full()):
            raise pubsub_error("unexpected-request", "not-subscribed")
        return None

    async def configuration(self, request: IQRequest, parsed: PepRequest):
        """PEP-03: the node's configuration form, for its owner."""
        request.require_own("only the owner sees a PEP node's configuration")
        config = await self._existing(request.target, parsed.nodeIdentifier)
        answer = domish.Element((NS_PUBSUB_OWNER, "pubsub"))
        answer.addChild(node_element(NS_PUBSUB_OWNER, "configure", parsed.nodeIdentifier)).addChild(config.form(self.node.config.pep_max_items).toElement())
        return answer

    async def configure(self, request: IQRequest, parsed: PepRequest):
        """A submitted form changes the node (a cancelled one nothing); a lower max_items
        drops the oldest items at once."""
        request.require_own("only the owner configures a PEP node")
        owner, name = request.target, parsed.nodeIdentifier
        config = await self._existing(owner, name)
        if parsed.options.formType == "cancel":
            return None
        changed = config.with_fields(form_fields(parsed.options), self.node.config.pep_max_items)
        await self.store.put_node(owner.user, owner.host, name, changed.to_json())
        items = await self.store.items(owner.user, owner.host, name)
        if len(items) > changed.max_items:
            await self.store.put_item(owner.user, owner.host, name, *items[0], changed.max_items)
        return None

    async def own_subscriptions(self, request: IQRequest, parsed: PepRequest):
        """XEP-0060 §5.6: the requester's explicit subscriptions to this account's nodes."""
        owner, mine = request.target, {request.sender.full(), request.sender.userhost()}
        answer = domish.Element((NS_PUBSUB, "pubsub"))
        listing = answer.addElement("subscriptions")
        for name in sorted(await self._nodes(owner)):
            for jid in sorted(mine.intersection(await self.store.subscribers(owner.user, owner.host, name))):
                entry = listing.addChild(node_element(NS_PUBSUB, "subscription", name))
                entry["jid"], entry["subscription"] = jid, "subscribed"
        return answer

    async def own_affiliations(self, request: IQRequest, parsed: PepRequest):
        """XEP-0060 §5.7: the requester's affiliation with each node that gives it one
        (the owner: every node)."""
        owner, requester = request.target, request.sender.userhost()
        answer = domish.Element((NS_PUBSUB, "pubsub"))
        listing = answer.addElement("affiliations")
        for name in sorted(await self._nodes(owner)):
            if requester == owner.userhost():
                affiliation = "owner"
            else:
                affiliation = (await self.store.affiliations(owner.user, owner.host, name)).get(requester)
            if affiliation is not None:
                listing.addChild(node_element(NS_PUBSUB, "affiliation", name))["affiliation"] = affiliation
        return answer

    async def node_affiliations(self, request: IQRequest, parsed: PepRequest):
        """XEP-0060 §8.9.1: the owner first, then each member and outcast."""
        request.require_own("only the owner manages a PEP node's affiliations")
        owner, name = request.target, parsed.nodeIdentifier
        await self._existing(owner, name)
        entries = {owner.userhost(): "owner", **await self.store.affiliations(owner.user, owner.host, name)}
        return self._owner_list("affiliations", name, "affiliation", entries)

    async def set_node_affiliations(self, request: IQRequest, parsed: PepRequest):
        """XEP-0060 §8.9.2: members and outcasts set, ``none`` removes one; all or nothing.
        An outcast's explicit subscriptions end at once, as does any a change leaves
        unadmitted (PEP-10)."""
        request.require_own("only the owner manages a PEP node's affiliations")
        owner, name = request.target, parsed.nodeIdentifier
        config = await self._existing(owner, name)
        changes: dict[str, str | None] = {}
        for entity, affiliation in parsed.affiliations.items():
            if entity.userhost() == owner.userhost():
                raise StanzaError("not-acceptable", text="the owner's affiliation is not to be changed")
            if affiliation in ("publisher", "publish-only"):
                raise Unsupported(f"{affiliation}-affiliation", text="only the owner publishes to a PEP node")
            if affiliation not in (*AFFILIATIONS, "none"):
                raise StanzaError("bad-request", text=f"no affiliation {affiliation!r} here")
            changes[entity.userhost()] = None if affiliation == "none" else affiliation
        limit = self.node.config.pep_max_affiliations
        if not await self.store.set_affiliations(owner.user, owner.host, name, changes, limit):
            raise StanzaError("policy-violation", type="modify", text=f"a PEP node has at most {limit} affiliations")
        await self._drop_unadmitted(owner, name, await self._access(owner, name, config))
        return None

    async def node_subscriptions(self, request: IQRequest, parsed: PepRequest):
        """XEP-0060 §8.8.1: the explicit subscriptions (those implied by presence and caps
        come and go with them, and are not listed)."""
        request.require_own("only the owner manages a PEP node's subscriptions")
        owner, name = request.target, parsed.nodeIdentifier
        await self._existing(owner, name)
        subscribers = await self.store.subscribers(owner.user, owner.host, name)
        return self._owner_list("subscriptions", name, "subscription", dict.fromkeys(subscribers, "subscribed"))

    async def set_node_subscriptions(self, request: IQRequest, parsed: PepRequest):
        """XEP-0060 §8.8.2: ``subscribed`` adds, ``none`` removes. The owner may subscribe
        only whom the node admits, as a subscription it does not admit would end at the
        next notification (PEP-10): else not-acceptable; past pep_max_subscribers,
        policy-violation; either way nothing changes."""
        request.require_own("only the owner manages a PEP node's subscriptions")
        owner, name = request.target, parsed.nodeIdentifier
        access = await self._access(owner, name, await self._existing(owner, name))
        states = {subscriber.full(): state for subscriber, state in parsed.subscription_states.items()}
        for subscriber, state in parsed.subscription_states.items():
            if state not in ("subscribed", "none"):
                raise StanzaError("bad-request", text=f"a subscription is set to subscribed or none, not {state!r}")
            if state == "subscribed" and not access.admits(subscriber.userhost()):
                raise StanzaError("not-acceptable", text=f"the node's access model does not admit {subscriber.full()}")
        current = await self.store.subscribers(owner.user, owner.host, name)
        if len({*current, *states} - {jid for jid, state in states.items() if state == "none"}) > self.node.config.pep_max_subscribers:
            raise pubsub_error("policy-violation", "too-many-subscriptions", text="the node would have more subscribers than it may", kind="wait")
        for jid, state in sorted(states.items(), key=lambda entry: entry[1] == "subscribed"):  # removals first
            if state == "subscribed":
                await self._subscribe(owner, name, internJID(jid))
            else:
                await self.store.unsubscribe(owner.user, owner.host, name, jid)
        return None

    @staticmethod
    def _owner_list(verb: str, name: str, entry: str, states: dict[str, str]) -> domish.Element:
        """``<pubsub xmlns=owner><verb node><entry jid entry=state/>...`` (§8.8.1, §8.9.1)."""
        answer = domish.Element((NS_PUBSUB_OWNER, "pubsub"))
        listing = answer.addChild(node_element(NS_PUBSUB_OWNER, verb, name))
        for jid, state in states.items():
            element = listing.addElement(entry)
            element["jid"], element[entry] = jid, state
        return answer

    async def _drop_unadmitted(self, owner: JID, name: str, access: NodeAccess) -> None:
        for subscriber in await self.store.subscribers(owner.user, owner.host, name):
            if not access.admits(internJID(subscriber).userhost()):
                await self.store.unsubscribe(owner.user, owner.host, name, subscriber)

    async def visible_nodes(self, requester: JID | None, owner: JID) -> list[str]:
        """PEP-12: the nodes disco#items lists, those the requester may read."""
        nodes = await self._nodes(owner)
        if not nodes or requester is None:
            return []
        return sorted([name for name, config in nodes.items() if (await self._access(owner, name, config)).admits(requester.userhost())])

    # -- who may read, who hears ---------------------------------------------------------------

    def _owner_allows(self, message: domish.Element, owner: str) -> Callable[[str], bool]:
        """PEP-13: whether the owner's privacy list (and blocklist) lets this message out to a
        bare JID; asked per recipient, so an owner without a list costs one look."""
        privacy = self.node.privacy
        if privacy is None or privacy.effective(owner, None) is None:
            return lambda peer: True
        return lambda peer: privacy.allowed(message, owner, None, internJID(peer), inbound=False)

    async def _notify(self, owner: JID, name: str, access: NodeAccess, subscribers: list[str], content: domish.Element) -> None:
        """PEP-04: one headline per full JID: the owner's available resources, and the
        resources wanting the node of those the node admits among her contacts and the
        entities she shares directed presence with (PEP-14), here or on other domains,
        minus whom her or their own lists block; then one to each explicit subscriber not
        reached so (its own lists apply on delivery). A subscriber the node no longer
        admits loses its subscription (PEP-10)."""
        bare = access.account.bare
        message = event(bare, content)
        local, here = self.node.router.local, self.node.node_id
        own = self.node.directory.resources(bare)
        recipients, reached = local.available(own), {bare}
        admits, owner_allows = access.admitter(), self._owner_allows(message, bare)
        abroad = await self._abroad(access.account, own)
        for peer, resources in self._audience(access, own, abroad):
            if admits(peer) and owner_allows(peer):
                for resource in resources:
                    if not resource.available and resource.node == here:  # as local.available()
                        continue
                    wanted = self._remembered(resource)
                    if name in (await self.interests(resource) if wanted is None else wanted):
                        recipients.append(resource)
                        reached.add(peer)
        self._deliver(message, recipients)
        for subscriber in subscribers:
            peer = internJID(subscriber).userhost()
            if peer in reached:
                continue
            if not access.admits(peer):
                await self.store.unsubscribe(owner.user, owner.host, name, subscriber)
            elif owner_allows(peer):
                self._send_to_subscriber(bare, content, subscriber)

    async def _abroad(self, account: Account, own: list[Resource]) -> Callable[[str], list[Resource]]:
        """Bare JID of another domain -> its resources whose presence reached the owner: this
        node's table; in a cluster, what every node filed (one read, for an owner with
        contacts or sharers abroad), since the presence may have come in on another node."""
        cluster = self.node.cluster
        if not cluster.shared:
            return functools.partial(self.abroad.of, account.bare)
        peers = [*account.subscribers(), *(jid for resource in own for jid in resource.directed)]
        if all(internJID(peer).host in self.node.domains for peer in peers):
            return lambda contact: []
        found: dict[str, list[Resource]] = {}
        for full, record in (await cluster.abroad(account.bare)).items():
            resource = filed(full, record)
            found.setdefault(resource.bare, []).append(resource)
        return lambda contact: found.get(contact, [])

    def _audience(self, access: NodeAccess, own: list[Resource], abroad: Callable[[str], list[Resource]]) -> Iterator[tuple[str, list[Resource]]]:
        """(bare JID, resources) of those who may hear of the owner's nodes: her contacts with
        a presence subscription, then entities her resources sent directed presence to (the
        resource addressed, or all of a bare JID) and no unavailable since. Resources of
        other domains come from ``abroad``."""
        contacts, domains, directory = access.account.subscribers(), self.node.domains, self.node.directory
        for contact in contacts:  # a roster's bare JID, prepared: its domain follows the '@'
            yield contact, directory.resources(contact) if contact.rpartition("@")[2] in domains else abroad(contact)
        shared = {jid for resource in own for jid in resource.directed}
        if not shared:
            return
        sharers: dict[str, list[Resource]] = {}
        for target in map(internJID, sorted(shared)):
            if target.user is not None and target.userhost() not in contacts and target.host not in self.node.router.services:
                resources = sharers.setdefault(target.userhost(), [])
                resources += [r for r in self._resources(target, abroad) if r not in resources]
        yield from sharers.items()

    def _resources(self, peer: JID, abroad: Callable[[str], list[Resource]]) -> list[Resource]:
        """The resources of a JID (just the one of a full JID): from the session directory for
        a local one, else from ``abroad``."""
        if peer.host in self.node.domains:
            directory = self.node.directory
            found = [directory.resource(peer)] if peer.resource else directory.resources(peer.userhost())
            return [r for r in found if r is not None]
        resources = abroad(peer.userhost())
        return [r for r in resources if r.jid == peer] if peer.resource else resources

    def _deliver(self, message: domish.Element, resources: list[Resource]) -> None:
        """A notification to each resource: serialised once for those of this server, where
        their own lists apply; a copy routed over federation to each of another domain,
        whose server applies its lists."""
        local = self.node.router.local
        here = [r for r in resources if r.node != ABROAD]
        local.send_each_available(local.admitted(message, here), message)
        if len(here) != len(resources):
            for resource in resources:
                if resource.node == ABROAD:
                    self.node.router.send(addressed_copy(message, resource.jid.full()))

    def _send_to_subscriber(self, owner: str, content: domish.Element, subscriber: str) -> None:
        """A notification routed to a subscribed JID: delivery rules and the recipient's lists apply."""
        message = event(owner, content)
        message["to"] = subscriber
        self.node.router.send(message)

    def bounced(self, message: domish.Element, target: JID):
        """PEP-11: an error returned for a notification is the service's to handle, never a
        message to the owner's resources (nor answered: errors are not). One that says the
        recipient will never take them (type cancel or auth) ends its explicit subscriptions."""
        if not message.getAttribute("id", "").startswith(NOTIFICATION_ID):
            return None
        error = message.error
        sender = message.getAttribute("from")
        if sender and error is not None and error.getAttribute("type") in ("cancel", "auth"):
            subscriber = internJID(sender)
            jids = sorted({subscriber.full(), subscriber.userhost()})  # its subscriptions, bare and full, end
            run_in_background(self.store.unsubscribe_everywhere(target.user, target.host, jids), self.log, f"bounce from {sender} failed")
        if sender and internJID(sender).host not in self.node.domains:  # a resource of another domain that bounces is gone, whatever the error type
            full = internJID(sender).full()
            gone = self.abroad.forget(full)
            if gone is not None:
                self.ended(gone)
            self.node.cluster.forget_abroad(target.userhost(), full)
        return True

    # -- caps: what each resource wants (PEP-05/06) -------------------------------------------

    async def features(self, resource: Resource) -> frozenset[str] | None:
        """The features of the resource's announced caps (none without caps), or None while
        they are not known and trusted (a resource of another node too: its presence comes
        with the directory's replica). Caps that cannot be verified are known for that full
        JID alone: to the node that asked, or, for a remote resource, from its filing."""
        announced = announced_caps(resource.presence)
        if announced is None:
            return frozenset()
        _, ver, algorithm = announced
        if algorithm in caps.HASHES:
            return await self.caps_cache.get(ver)
        legacy = self._legacy.get(resource.jid.full())
        if legacy is None and isinstance(resource, Filed):
            legacy = resource.legacy
        return legacy[1] if legacy is not None and legacy[0] == ver else None

    async def interests(self, resource: Resource) -> frozenset[str]:
        """The nodes the resource's caps want (``<node>+notify``). Every notification asks
        this of every recipient, so it is remembered per presence stanza (a new presence
        replaces the element, never changes it), once the caps are known."""
        remembered = self._remembered(resource)
        if remembered is not None:
            return remembered
        found = await self.features(resource)
        # Most clients want nothing: they share one empty set instead of 216 B each for as long as they are online.
        wanted = frozenset(f.removesuffix(NOTIFY) for f in found or () if f.endswith(NOTIFY)) or NOTHING_WANTED
        if found is not None and not isinstance(resource, Filed):  # a filing is read anew per publish, and never ends here
            self._interests[resource.jid.full()] = (resource.presence, wanted)
        return wanted

    def _remembered(self, resource: Resource) -> frozenset[str] | None:
        """``interests`` while its presence is the one remembered: a notification's loop asks
        this first, so a known recipient costs no coroutine."""
        memo = self._interests.get(resource.jid.full())
        return memo[1] if memo is not None and memo[0] is resource.presence else None

    def available(self, resource: Resource, initial: bool):
        """Catch a resource up when its caps may want nodes it did not want before. A local
        resource without caps that wanted nothing wants nothing now either: no task for it
        (nearly every login of a client that announces no caps)."""
        announced = announced_caps(resource.presence)
        full = resource.jid.full()
        if announced is None and full not in self._wanted and (not initial or resource.node != ABROAD):
            return None
        run_in_background(self._arrived(resource, announced, initial), self.log, f"caps of {full} failed")
        return None

    async def _arrived(self, resource: Resource, announced: tuple[str, str, str | None] | None, initial: bool) -> None:
        """Learn an unknown ``ver`` by asking the resource, else catch it up."""
        if announced is not None and not await self._known(resource, announced):
            self._ask(resource, announced, initial)
        else:
            await self._catch_up(resource, initial)

    async def _known(self, resource: Resource, announced: tuple[str, str, str | None]) -> bool:
        _, ver, algorithm = announced
        if algorithm in caps.HASHES:
            return await self.caps_cache.get(ver) is not None
        legacy = self._legacy.get(resource.jid.full())
        return legacy is not None and legacy[0] == ver

    def _ask(self, resource: Resource, announced: tuple[str, str, str | None], initial: bool) -> None:
        """disco#info to the full JID with node='node#ver'; one question per resource at a time."""
        asker = self._asker(resource)
        if asker is None:
            return  # a resource of another domain that went before it could be asked
        for asked, (whom, _, _) in list(self._asking.items()):
            if whom is resource:
                del self._asking[asked]
        iq_id = f"caps-{secrets.token_hex(8)}"
        self._asking[iq_id] = (resource, announced, initial)
        query = domish.Element((NS_CLIENT, "iq"))
        query["type"], query["id"], query["to"], query["from"] = "get", iq_id, resource.jid.full(), asker
        query.addElement((caps.NS_DISCO_INFO, "query"))["node"] = f"{announced[0]}#{announced[1]}"
        self.node.router.send(query)

    def _asker(self, resource: Resource) -> str | None:
        """The domain that asks a resource for its caps: its own, or for a resource of another
        domain, that of an account its presence reaches (None once none does)."""
        if resource.node != ABROAD:
            return resource.jid.host
        listener = self.abroad.listener(resource.jid.full())
        if listener is None or listener.resource is not resource:
            return None
        return internJID(next(iter(listener.told))).host

    def caps_answer(self, iq: domish.Element):
        """The answer to ``_ask``, if it is one."""
        asked = self._asking.get(iq.getAttribute("id", ""))
        if asked is None or iq.getAttribute("from") != asked[0].jid.full():
            return None
        del self._asking[iq["id"]]
        query = next(iq.elements(caps.NS_DISCO_INFO, "query"), None)
        if iq["type"] == "result" and query is not None:
            resource, announced, initial = asked
            if sum(len(feature) for feature in caps.features(query)) > self.node.config.caps_max_features:
                self.log.info("caps of {jid} list too many features to remember", jid=resource.jid.full())
                return True
            run_in_background(self._answered(resource, announced, initial, query), self.log, f"caps of {resource.jid.full()} failed")
        return True

    async def _answered(self, resource: Resource, announced: tuple[str, str, str | None], initial: bool, query: domish.Element) -> None:
        """Cached for every client if its hash verifies, for this JID alone if it cannot be
        verified (no hash, or one of XEP-0115 §5.4's that is not computed here: filed for the
        cluster too, for a remote resource), ignored if it is forged (PEP-06); then the last
        items of an initial presence."""
        _, ver, algorithm = announced
        if algorithm not in caps.HASHES:
            self._legacy[resource.jid.full()] = (ver, caps.features(query))
            self._file_for_cluster(resource)
        elif caps.verifies(query, ver, algorithm):
            await self.caps_cache.learned(ver, caps.features(query))
        else:
            self.log.info("caps of {jid} do not hash to the ver announced, not trusted", jid=resource.jid.full())
            return
        await self._catch_up(resource, initial)

    async def _catch_up(self, resource: Resource, initial: bool) -> None:
        """PEP-05: the last items of the nodes a resource wants: all of them at its initial
        presence, those it starts wanting when its caps change later; nothing again."""
        if resource.node == ABROAD:
            await self._catch_up_abroad(resource)
            return
        wanted = await self.interests(resource)
        before = frozenset() if initial else self._wanted.get(resource.jid.full(), frozenset())
        if wanted:
            self._wanted[resource.jid.full()] = wanted
        else:
            self._wanted.pop(resource.jid.full(), None)
        if wanted - before:
            await self.send_last_items(resource, wanted - before)

    async def _catch_up_abroad(self, resource: Resource) -> None:
        """PEP-05 for a resource of another domain: of each local account its presence reaches,
        the newest items of the nodes it wants and has not had from that account."""
        listener = self.abroad.listener(resource.jid.full())
        if listener is None or listener.resource is not resource:
            return  # gone meanwhile
        wanted = await self.interests(resource)
        for owner, told in list(listener.told.items()):
            if owner in listener.told:
                listener.told[owner] = wanted
                if wanted - told:
                    await self._last_items(internJID(owner), resource, wanted - told)

    async def send_last_items(self, resource: Resource, wanted: frozenset[str]) -> None:
        """The newest item of each of these nodes, of the resource's own account and of each
        local contact whose presence it gets."""
        account = await self.rosters.account(resource.jid.user, resource.jid.host)
        for owner in [account.bare, *(c for c in account.subscriptions() if internJID(c).host in self.node.domains)]:
            await self._last_items(internJID(owner), resource, wanted)

    async def _last_items(self, owner: JID, resource: Resource, wanted: frozenset[str]) -> None:
        """The newest item of each of the owner's nodes among ``wanted`` that the access model
        and the owner's lists let the resource have."""
        nodes = await self._nodes(owner)
        reader = resource.bare
        for name in sorted(wanted & nodes.keys()):
            items = await self.store.items(owner.user, owner.host, name)
            if not items or not (await self._access(owner, name, nodes[name])).admits(reader):
                continue
            message = event(owner.userhost(), items_element(NS_PUBSUB_EVENT, name, items[:1]))
            if self._owner_allows(message, owner.userhost())(reader):
                self._deliver(message, [resource])

    def sharing(self, presence: domish.Element, origin: Resource, target: JID):
        """PEP-14 with PEP-05: a local entity the owner starts sending directed presence to is a
        temporary subscriber, so it gets the newest items it wants, as on subscribing. Asked
        before the presence module files the target, so a presence update sends nothing again."""
        if presence.getAttribute("type") is None and target.user is not None and target.host in self.node.domains and target.full() not in origin.directed:
            run_in_background(self._shared(origin, target), self.log, f"last items for {target.full()} failed")
        return None

    async def _shared(self, origin: Resource, target: JID) -> None:
        if target.full() not in origin.directed:  # not filed: a contact (caught up at its presence), or over the limit
            return
        directory = self.node.directory
        found = [directory.resource(target)] if target.resource else directory.resources(target.userhost())
        for resource in self.node.router.local.available([r for r in found if r is not None]):
            await self._last_items(origin.jid.userhostJID(), resource, await self.interests(resource))

    def heard(self, presence: domish.Element, target: JID):
        """PEP-14 across domains: a remote resource's presence to a local account it shares
        presence with (a contact she is subscribed to, or an entity she sent directed
        presence to) makes it a listener there, its caps asked and its last items sent as
        for a local one; its unavailable ends that. A node alone files it while the account
        is in memory (her initial presence probes her remote contacts, whose answers fill
        it again); in a cluster, whichever node it reaches files it for all."""
        kind, sender = presence.getAttribute("type"), parse_jid(presence.getAttribute("from"))
        if kind not in (None, "unavailable") or sender is None or sender.host in self.node.domains or sender.host in self.node.router.services:
            return None
        owner, cluster = target.userhost(), self.node.cluster
        if kind == "unavailable":
            for resource in self.abroad.unavailable(owner, sender):
                self.ended(resource)
            cluster.forget_abroad(owner, sender.full())
            return None
        if sender.resource is None:
            return None
        account = self.rosters.cached(owner)
        if account is not None:
            self._file(account, sender, presence)
        elif cluster.shared:  # she may publish from another node, which did not get this presence
            run_in_background(self._file_later(target, sender, presence), self.log, f"filing {sender.full()} for {owner} failed")
        return None

    async def _file_later(self, target: JID, sender: JID, presence: domish.Element) -> None:
        if await self.node.storage.accounts.exists(target.user, target.host):
            self._file(await self.rosters.account(target.user, target.host), sender, presence)

    def _file(self, account: Account, sender: JID, presence: domish.Element) -> None:
        """A remote resource that shares presence with the account becomes a listener: filed
        here (and for the cluster), its caps asked, its last items sent."""
        if not self._hears_from(account, sender):
            return
        listener = self.abroad.available(account.bare, sender, presence)
        if listener is None:
            return
        self._file_for_cluster(listener.resource, account.bare)
        resource = listener.resource
        run_in_background(self._arrived(resource, announced_caps(presence), False), self.log, f"caps of {resource.jid.full()} failed")

    def _file_for_cluster(self, resource: Resource, *owners: str) -> None:
        """A remote resource's presence, with its per-JID caps once known (the features PEP
        reads), for the node each owner publishes from; no owner named: every account here
        that hears from it."""
        listener = self.abroad.listener(resource.jid.full())
        if resource.node != ABROAD or listener is None or listener.resource is not resource or not self.node.cluster.shared:
            return
        legacy = self._legacy.get(resource.jid.full())
        if legacy is not None:
            legacy = (legacy[0], frozenset(f for f in legacy[1] if f.endswith(NOTIFY)))
        record = filing(serialise(resource.presence, ""), legacy)
        for owner in owners or list(listener.told):
            self.node.cluster.file_abroad(owner, resource.jid.full(), record)

    def _hears_from(self, account: Account, sender: JID) -> bool:
        item = account.item(sender.userhost())
        if item is not None and item.subscription in ("to", "both"):
            return True
        return any(sender.full() in r.directed or sender.userhost() in r.directed for r in self.node.directory.resources(account.bare))

    def ended(self, resource: Resource):
        self._legacy.pop(resource.jid.full(), None)
        self._wanted.pop(resource.jid.full(), None)
        self._interests.pop(resource.jid.full(), None)
        for asked, (whom, _, _) in list(self._asking.items()):
            if whom is resource:
                del self._asking[asked]
        return None
