#!/usr/bin/env python3
"""MUC/MAM scenarios with slixmpp against one XMPP server (Prosody or perch).

The same script runs against both servers. Every step prints one line
`PASS|FAIL|SKIP step: reason` and is written, with what was observed, to a JSON file
(--json) from which run.sh builds the differences table.

slixmpp does the stream, TLS, SASL and resource binding. Everything above that is sent and
read as raw stanzas (ElementTree), so that what is checked is the wire, not a plugin's view
of it: the script registers no XEP plugin.

--profile says which rules the server plays by where XEP-0045 leaves a choice and perch's
Lync model makes another (conformance/xmpp/INTENDED.md): `xep0045` for Prosody, `lync` for
perch. Only the steps named in INTENDED.md look at the profile; every other step expects the
same of both servers.

Rooms are found by disco#items on the MUC service and picked by their `name`. --room-jid
NAME=JID gives a fallback for a room the service does not list to alice (a hidden room on
Prosody); --create-rooms makes and configures the four rooms as alice first (Prosody).
"""
import argparse
import asyncio
import copy
import json
import logging
import ssl
import sys
import time
import uuid
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NS_CLIENT = "jabber:client"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"
NS_XDATA = "jabber:x:data"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
FULLTEXT_VAR = "{urn:xmpp:fulltext:0}fulltext"
WAIT = 6.0  # seconds for any one expected stanza

ROLES = ("lobby", "team", "hideout", "stage")


def q(ns, tag):
    return "{%s}%s" % (ns, tag)


def bare(jid):
    return (jid or "").split("/", 1)[0]


def resource(jid):
    return jid.split("/", 1)[1] if jid and "/" in jid else ""


def error_condition(el):
    """The defined condition of a stanza's <error/>, or None."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % NS_STANZAS) and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return "error-without-condition"


def status_codes(el):
    x = el.find(q(NS_MUC_USER, "x"))
    return set() if x is None else {s.get("code") for s in x.findall(q(NS_MUC_USER, "status"))}


def muc_item(el):
    x = el.find(q(NS_MUC_USER, "x"))
    return None if x is None else x.find(q(NS_MUC_USER, "item"))


def body(el):
    b = el.find(q(NS_CLIENT, "body"))
    return None if b is None else (b.text or "")


def stanza_id(el, by):
    for s in el.findall(q(NS_SID, "stanza-id")):
        if s.get("by") == by:
            return s.get("id")
    return None


class Client(slixmpp.ClientXMPP):
    """One signed-in account. Every message and presence it receives lands in self.inbox."""

    def __init__(self, jid, password, ca, direct_tls):
        super().__init__(jid, password)
        self.enable_plaintext = False
        self.enable_starttls = not direct_tls
        self.enable_direct_tls = direct_tls
        if ca:
            self.ca_certs = ca
        self.inbox = []
        self.arrived = asyncio.Event()
        self.ready = asyncio.Event()
        self.failed = None
        self.offered_mechs = []
        self.sent_mech = None
        self.tls_done = False
        self.sent_starttls = False
        for name in ("message", "presence"):
            self.register_handler(Callback("raw " + name, MatchXPath("{%s}%s" % (NS_CLIENT, name)), self._rx))
        self.add_event_handler("session_start", lambda _: self.ready.set())
        self.add_event_handler("failed_auth", self._failed)
        self.add_event_handler("connection_failed", self._failed)
        self.add_event_handler("tls_success", lambda *_: setattr(self, "tls_done", True))
        self.add_filter("in", self._watch_in)
        self.add_filter("out", self._watch_out)

    def _failed(self, why=None):
        self.failed = str(why.xml[0].tag.split("}")[-1] if hasattr(why, "xml") and len(why.xml) else why)
        self.ready.set()

    def _watch_in(self, stanza):
        mechs = stanza.xml.find(q(NS_SASL, "mechanisms"))
        if mechs is not None:
            self.offered_mechs = [m.text for m in mechs.findall(q(NS_SASL, "mechanism"))]
        return stanza

    def _watch_out(self, stanza):
        if stanza.xml.tag == q(NS_SASL, "auth"):
            self.sent_mech = stanza.xml.get("mechanism")
        elif stanza.xml.tag == "{urn:ietf:params:xml:ns:xmpp-tls}starttls":
            self.sent_starttls = True
        return stanza

    def _rx(self, stanza):
        self.inbox.append(copy.deepcopy(stanza.xml))
        self.arrived.set()

    def mark(self):
        return len(self.inbox)

    async def wait_for(self, pred, start=0, timeout=WAIT):
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.inbox):
                if pred(self.inbox[i]):
                    return self.inbox[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    def all_since(self, start, pred):
        return [el for el in self.inbox[start:] if pred(el)]

    def tls_version(self):
        t = self.transport
        obj = t.get_extra_info("ssl_object") if t is not None else None
        return obj.version() if obj is not None else None

    def send_xml(self, text):
        self.send_raw(text)

    async def iq(self, typ, to, payload, timeout=WAIT):
        """('result', element) or ('error', condition) or ('timeout', None)."""
        iq = self.make_iq(ito=to, itype=typ)
        iq.xml.append(ET.fromstring(payload) if isinstance(payload, str) else payload)
        try:
            res = await iq.send(timeout=timeout)
            return "result", copy.deepcopy(res.xml)
        except IqError as e:
            return "error", error_condition(e.iq.xml)
        except IqTimeout:
            return "timeout", None


async def sign_in(args, user, direct_tls=False):
    jid = "%s@%s" % (user, args.domain)
    c = Client(jid, args.passwords[user], args.ca, direct_tls)
    port = args.tls_port if direct_tls else args.starttls_port
    c.connect(args.host, port)
    try:
        await asyncio.wait_for(c.ready.wait(), 12)
    except asyncio.TimeoutError:
        c.failed = c.failed or "no session within 12 s"
    if c.failed:
        c.abort()
        return c, c.failed
    return c, None


class Run:
    def __init__(self, args):
        self.args = args
        self.results = {}
        self.order = []
        self.lync = args.profile == "lync"
        self.muc = args.muc
        self.clients = {}
        self.rooms = {}  # role -> room JID
        self.live_ids = []  # (body, stanza-id) of the live posts in Lobby

    def step(self, verdict, name, reason, observed=None):
        line = "%s %s: %s" % (verdict, name, reason)
        print(line, flush=True)
        self.order.append(name)
        self.results[name] = {"verdict": verdict, "reason": reason,
                              "observed": reason if observed is None else observed}

    def check(self, ok, name, reason, observed=None):
        self.step("PASS" if ok else "FAIL", name, reason, observed)
        return ok

    def jid(self, user):
        return "%s@%s" % (user, self.args.domain)

    def nick(self, user):
        return user

    # ---------------------------------------------------------------- sign-in
    async def signin(self):
        a = self.args
        for user in ("alice", "bob", "carol"):
            c, err = await sign_in(a, user, direct_tls=False)
            if err:
                self.step("FAIL", "signin-starttls", "%s could not sign in over STARTTLS: %s" % (user, err))
                return False
            self.clients[user] = c
        c = self.clients["alice"]
        ok = c.sent_starttls and c.tls_done and c.tls_version() is not None
        self.check(ok, "signin-starttls", "alice, bob, carol signed in; STARTTLS negotiated, %s"
                   % c.tls_version(), observed="starttls %s" % ("ok" if ok else "not negotiated"))
        mech = c.sent_mech or ""
        self.check(mech.startswith("SCRAM-SHA-256"), "sasl-mechanism",
                   "used %s; offered %s" % (mech, " ".join(c.offered_mechs)),
                   observed="used %s" % mech)
        if not a.tls_port:
            self.step("SKIP", "signin-direct-tls", "no direct TLS port given")
        else:
            d, err = await sign_in(a, "alice", direct_tls=True)
            if err:
                self.step("FAIL", "signin-direct-tls", "alice over direct TLS: %s" % err)
            else:
                ok = (not d.sent_starttls) and d.tls_version() is not None and (d.sent_mech or "").startswith("SCRAM-SHA-256")
                self.check(ok, "signin-direct-tls", "alice signed in over direct TLS (%s, no STARTTLS), %s"
                           % (d.tls_version(), d.sent_mech), observed="direct tls %s" % ("ok" if ok else "bad"))
                d.disconnect()
        return True

    # ---------------------------------------------------------------- disco
    async def disco(self):
        a, alice, bob = self.args, self.clients["alice"], self.clients["bob"]
        typ, info = await alice.iq("get", a.domain, "<query xmlns='%s'/>" % NS_DISCO_INFO)
        if typ != "result":
            self.step("FAIL", "disco-server", "disco#info of %s: %s" % (a.domain, typ))
        else:
            idents = {(i.get("category"), i.get("type")) for i in info.iter(q(NS_DISCO_INFO, "identity"))}
            feats = {f.get("var") for f in info.iter(q(NS_DISCO_INFO, "feature"))}
            ok = ("server", "im") in idents and NS_DISCO_INFO in feats
            self.check(ok, "disco-server", "identity server/im: %s, %d features"
                       % (("server", "im") in idents, len(feats)), observed="server/im %s" % ok)
        typ, items = await alice.iq("get", a.domain, "<query xmlns='%s'/>" % NS_DISCO_ITEMS)
        listed = typ == "result" and any(i.get("jid") == self.muc for i in items.iter(q(NS_DISCO_ITEMS, "item")))
        typ, info = await alice.iq("get", self.muc, "<query xmlns='%s'/>" % NS_DISCO_INFO)
        ok = typ == "result" and NS_MUC in {f.get("var") for f in info.iter(q(NS_DISCO_INFO, "feature"))} \
            and ("conference", "text") in {(i.get("category"), i.get("type")) for i in info.iter(q(NS_DISCO_INFO, "identity"))}
        self.check(ok and listed, "disco-muc-service",
                   "%s listed in the server's disco#items: %s; identity conference/text and feature muc: %s"
                   % (self.muc, listed, ok), observed="listed %s, muc %s" % (listed, ok))

        async def names(c):
            typ, items = await c.iq("get", self.muc, "<query xmlns='%s'/>" % NS_DISCO_ITEMS)
            if typ != "result":
                return None
            return {i.get("name") or "": i.get("jid") for i in items.iter(q(NS_DISCO_ITEMS, "item"))}

        for_alice, for_bob = await names(alice), await names(bob)
        if for_alice is None or for_bob is None:
            self.step("FAIL", "disco-items-nonmember", "disco#items of %s failed" % self.muc)
            return False
        # Pick the rooms by name, as a client would.
        for role in ROLES:
            name = a.names[role]
            if name in for_alice:
                self.rooms[role] = for_alice[name]
            elif name in a.room_jids:
                self.rooms[role] = a.room_jids[name]
        missing = [a.names[r] for r in ROLES if r not in self.rooms]
        if missing:
            self.step("FAIL", "disco-items-member", "rooms not found by name: %s (alice sees %s)"
                      % (", ".join(missing), sorted(for_alice)))
            return False
        hide, public = a.names["hideout"], [a.names[r] for r in ("lobby", "team", "stage")]
        self.check(hide not in for_bob and all(n in for_bob for n in public), "disco-items-nonmember",
                   "bob sees %s; %s is not listed to him" % (sorted(for_bob), hide),
                   observed="hidden room listed to non-member: %s" % (hide in for_bob))
        # INTENDED.md#secret-rooms-listed-to-members: Lync lists a secret room to its members;
        # XEP-0045 hides a hidden room from every disco#items.
        seen = hide in for_alice
        self.check(seen == self.lync, "disco-items-member",
                   "alice (a member) %s %s in disco#items (%s rule)"
                   % ("sees" if seen else "does not see", hide, "Lync" if self.lync else "XEP-0045"),
                   observed="hidden room listed to member: %s" % seen)
        # INTENDED.md#room-jids: perch's room JIDs are uids, not names.
        local = {r: bare(self.rooms[r]).split("@")[0] for r in ROLES}
        by_name = [r for r in ROLES if local[r] == a.names[r].lower()]
        if self.lync:
            self.check(not by_name, "room-jids", "room JIDs are not made of names: %s"
                       % ", ".join(self.rooms[r] for r in ROLES), observed="local part = uid")
        else:
            self.check(len(by_name) == len(ROLES), "room-jids", "room JIDs are the names the owner chose: %s"
                       % ", ".join(self.rooms[r] for r in ROLES), observed="local part = name")
        return True

    async def room_info(self):
        alice = self.clients["alice"]
        want = {"lobby": {"muc_open", "muc_persistent", "muc_public"},
                "team": {"muc_membersonly", "muc_persistent", "muc_public"},
                "hideout": {"muc_membersonly", "muc_hidden", "muc_persistent"},
                "stage": {"muc_moderated", "muc_persistent", "muc_public"}}
        bad, seen = [], []
        for role in ROLES:
            typ, info = await alice.iq("get", self.rooms[role], "<query xmlns='%s'/>" % NS_DISCO_INFO)
            if typ != "result":
                bad.append("%s: %s" % (role, typ))
                continue
            feats = {f.get("var") for f in info.iter(q(NS_DISCO_INFO, "feature"))}
            idents = [(i.get("category"), i.get("type"), i.get("name")) for i in info.iter(q(NS_DISCO_INFO, "identity"))]
            lack = sorted(want[role] - feats)
            if NS_MUC not in feats or not any(i[:2] == ("conference", "text") for i in idents):
                lack.append("muc feature/identity")
            if not any(i[2] == self.args.names[role] for i in idents):
                lack.append("identity name %r" % self.args.names[role])
            if lack:
                bad.append("%s lacks %s" % (self.args.names[role], ", ".join(lack)))
            seen.append("%s: %s" % (self.args.names[role], " ".join(sorted(f for f in feats if f.startswith("muc_")))))
        self.check(not bad, "disco-room-info", "; ".join(bad) if bad else "; ".join(seen),
                   observed="ok" if not bad else "; ".join(bad))

    # ---------------------------------------------------------------- join, post, history
    def presence_from(self, frm, typ=None):
        return lambda el: el.tag == q(NS_CLIENT, "presence") and el.get("from") == frm and el.get("type") == typ

    async def join(self, c, room, nick, maxstanzas=None):
        """Sends the join; returns (self-presence or error presence or None, mark before)."""
        start = c.mark()
        hist = "" if maxstanzas is None else "<history maxstanzas='%d'/>" % maxstanzas
        c.send_xml("<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>" % (room, nick, NS_MUC, hist))

        def answer(el):
            if el.tag != q(NS_CLIENT, "presence") or bare(el.get("from")) != room:
                return False
            return el.get("type") == "error" or "110" in status_codes(el)
        return await c.wait_for(answer, start), start

    async def leave(self, c, room, nick):
        c.send_xml("<presence to='%s/%s' type='unavailable'/>" % (room, nick))

    async def join_history(self):
        alice, bob = self.clients["alice"], self.clients["bob"]
        lobby = self.rooms["lobby"]
        pres, _ = await self.join(alice, lobby, "alice")
        if pres is None or pres.get("type") == "error":
            self.step("FAIL", "join-history", "alice could not join Lobby: %s"
                      % (error_condition(pres) if pres is not None else "no answer"))
            return False
        self.run_tag = uuid.uuid4().hex[:8]
        self.history_bodies = ["history %d %s" % (i, self.run_tag) for i in (1, 2, 3)]
        for text in self.history_bodies:
            st = alice.mark()
            alice.send_xml("<message to='%s' type='groupchat'><body>%s</body></message>" % (lobby, text))
            echo = await alice.wait_for(lambda el: body(el) == text and el.get("type") == "groupchat", st)
            if echo is not None:
                self.live_ids.append((text, stanza_id(echo, lobby)))
        pres, start = await self.join(bob, lobby, "bob", maxstanzas=2)
        if pres is None or pres.get("type") == "error":
            self.step("FAIL", "join-history", "bob could not join Lobby: %s"
                      % (error_condition(pres) if pres is not None else "no answer"))
            return False
        codes = status_codes(pres)
        # History comes after the self-presence and before the subject (XEP-0045 7.2.14-15).
        await bob.wait_for(lambda el: el.tag == q(NS_CLIENT, "message") and el.find(q(NS_CLIENT, "subject")) is not None,
                           start, timeout=3)
        hist = bob.all_since(start, lambda el: el.tag == q(NS_CLIENT, "message") and el.get("type") == "groupchat"
                             and body(el) is not None)
        stamped = [el for el in hist if el.find(q(NS_DELAY, "delay")) is not None
                   and el.find(q(NS_DELAY, "delay")).get("stamp")]
        got = [body(el) for el in hist]
        ok = "110" in codes and got == self.history_bodies[1:] and len(stamped) == len(hist)
        self.check(ok, "join-history", "bob's self-presence has status %s; maxstanzas=2 gave %r, %d of %d with a delay stamp"
                   % (",".join(sorted(codes)), got, len(stamped), len(hist)),
                   observed="110 %s, last 2 of 3, delay %s" % ("110" in codes, len(stamped) == len(hist) and len(hist) > 0))
        return True

    async def post_receive(self):
        alice, bob = self.clients["alice"], self.clients["bob"]
        lobby = self.rooms["lobby"]
        text = "live post %s" % self.run_tag
        sa, sb = alice.mark(), bob.mark()
        alice.send_xml("<message to='%s' type='groupchat' id='post1'><body>%s</body></message>" % (lobby, text))
        got = await bob.wait_for(lambda el: body(el) == text, sb)
        echo = await alice.wait_for(lambda el: body(el) == text, sa)
        ok = got is not None and got.get("from") == lobby + "/alice" and got.get("type") == "groupchat"
        self.check(ok, "post-receive", "bob got alice's post from %s" % (got.get("from") if got is not None else "nothing"),
                   observed="received %s" % ok)
        id_a = stanza_id(echo, lobby) if echo is not None else None
        id_b = stanza_id(got, lobby) if got is not None else None
        self.live_ids.append((text, id_a))
        self.check(bool(id_a) and id_a == id_b, "stanza-id",
                   "reflection to alice stanza-id by=%s %s, bob's copy %s" % (lobby, id_a, id_b),
                   observed="same stanza-id %s" % (bool(id_a) and id_a == id_b))

    # ---------------------------------------------------------------- MAM
    async def mam(self, c, room, form_fields=(), rsm="", qid=None):
        """Returns (list of (id, body), fin element or error string)."""
        qid = qid or uuid.uuid4().hex[:10]
        form = ""
        if form_fields:
            form = "<x xmlns='%s' type='submit'><field var='FORM_TYPE' type='hidden'><value>%s</value></field>%s</x>" % (
                NS_XDATA, NS_MAM, "".join("<field var='%s'><value>%s</value></field>" % kv for kv in form_fields))
        start = c.mark()
        typ, res = await c.iq("set", room, "<query xmlns='%s' queryid='%s'>%s%s</query>" % (NS_MAM, qid, form, rsm))
        if typ != "result":
            return None, typ if typ != "error" else "error %s" % res
        out = []
        for el in c.all_since(start, lambda el: el.find(q(NS_MAM, "result")) is not None):
            r = el.find(q(NS_MAM, "result"))
            if r.get("queryid") != qid:
                continue
            msg = r.find(q(NS_FORWARD, "forwarded") + "/" + q(NS_CLIENT, "message"))
            out.append((r.get("id"), body(msg) if msg is not None else None))
        return out, res.find(q(NS_MAM, "fin"))

    @staticmethod
    def rsm_of(fin):
        s = fin.find(q(NS_RSM, "set")) if fin is not None else None
        get = lambda t: (s.find(q(NS_RSM, t)).text if s is not None and s.find(q(NS_RSM, t)) is not None else None)
        return get("first"), get("last"), get("count"), (fin.get("complete") in ("true", "1")) if fin is not None else None

    async def mam_steps(self):
        bob, lobby = self.clients["bob"], self.rooms["lobby"]
        ours = [b for b, _ in self.live_ids]
        allres, fin = await self.mam(bob, lobby)
        if allres is None:
            self.step("FAIL", "mam-all", "MAM query on %s: %s" % (lobby, fin))
            for s in ("mam-paging", "mam-ids", "mam-fulltext"):
                self.step("FAIL", s, "MAM query failed")
            return
        bodies = [b for _, b in allres if b in ours]
        self.check(bodies == ours, "mam-all", "%d messages archived; ours in order: %s" % (len(allres), bodies == ours),
                   observed="all %d posts in order %s" % (len(ours), bodies == ours))
        # Paging with RSM: max=2 forward with <after/>, then the last page with <before/>.
        pages, after, complete, guard = [], None, False, 0
        while not complete and guard < 20:
            guard += 1
            rsm = "<set xmlns='%s'><max>2</max>%s</set>" % (NS_RSM, "<after>%s</after>" % after if after else "")
            page, fin = await self.mam(bob, lobby, rsm=rsm)
            if page is None:
                break
            first, last, _, complete = self.rsm_of(fin)
            pages.append(page)
            if not page or last is None:
                break
            after = last
        flat = [x for p in pages for x in p]
        fwd_ok = flat == allres and all(len(p) <= 2 for p in pages) and complete
        last_page, fin = await self.mam(bob, lobby, rsm="<set xmlns='%s'><max>2</max><before/></set>" % NS_RSM)
        back_ok = last_page is not None and last_page == allres[-2:]
        prev_ok = False
        if back_ok and len(allres) > 2:
            first, _, _, _ = self.rsm_of(fin)
            prev, _ = await self.mam(bob, lobby, rsm="<set xmlns='%s'><max>2</max><before>%s</before></set>" % (NS_RSM, first))
            prev_ok = prev == allres[-4:-2]
        self.check(fwd_ok and back_ok and prev_ok, "mam-paging",
                   "max=2: %d pages forward with <after/> = the full result %s, complete=%s; <before/> gives the last 2: %s; "
                   "<before>first</before> the 2 before: %s" % (len(pages), flat == allres, complete, back_ok, prev_ok),
                   observed="forward %s, last page %s, previous %s" % (fwd_ok, back_ok, prev_ok))
        archived = {b: i for i, b in allres}
        mismatch = [b for b, sid in self.live_ids if not sid or archived.get(b) != sid]
        self.check(not mismatch, "mam-ids", "MAM ids equal the live stanza-ids for %d posts%s"
                   % (len(self.live_ids), "; differ: %s" % mismatch if mismatch else ""),
                   observed="equal %s" % (not mismatch))
        typ, form = await bob.iq("get", lobby, "<query xmlns='%s'/>" % NS_MAM)
        fields = set() if typ != "result" else {f.get("var") for f in form.iter(q(NS_XDATA, "field"))}
        if FULLTEXT_VAR not in fields:
            self.step("SKIP", "mam-fulltext", "the room's MAM form offers no %s field (fields: %s)"
                      % (FULLTEXT_VAR, " ".join(sorted(f for f in fields if f))), observed="not offered")
        else:
            res, fin = await self.mam(bob, lobby, form_fields=[(FULLTEXT_VAR, "live post")])
            got = [b for _, b in (res or [])]
            ok = got == ["live post %s" % self.run_tag]
            self.check(ok, "mam-fulltext", "search 'live post' found %r" % got, observed="found %s" % ok)

    # ---------------------------------------------------------------- refusals
    async def refusals(self):
        carol = self.clients["carol"]
        pres, _ = await self.join(carol, self.rooms["team"], "carol")
        cond = error_condition(pres) if pres is not None else "no answer"
        self.check(cond == "registration-required", "closed-room-refusal",
                   "carol joining %s: %s" % (self.args.names["team"], cond), observed=cond)
        # INTENDED.md#secret-rooms: a secret room answers a non-member exactly like a room that
        # does not exist; XEP-0045's hidden members-only room says registration-required.
        hide = self.rooms["hideout"]
        nowhere = "nosuchroom-%s@%s" % (uuid.uuid4().hex[:8], self.muc)
        pres, _ = await self.join(carol, hide, "carol")
        join_cond = error_condition(pres) if pres is not None else "no answer"
        typ_h, info_h = await carol.iq("get", hide, "<query xmlns='%s'/>" % NS_DISCO_INFO)
        typ_n, info_n = await carol.iq("get", nowhere, "<query xmlns='%s'/>" % NS_DISCO_INFO)
        info_hide = typ_h if typ_h != "error" else info_h
        info_none = typ_n if typ_n != "error" else info_n
        obs = "join %s, disco#info %s (no such room: %s)" % (join_cond, info_hide, info_none)
        if self.lync:
            ok = join_cond == "item-not-found" and info_hide == info_none == "item-not-found"
        else:
            ok = join_cond == "registration-required"
        self.check(ok, "secret-room-invisible", "carol and %s: %s" % (self.args.names["hideout"], obs), observed=obs)
        # INTENDED.md#no-creation-by-join: joining a room that does not exist makes it in XEP-0045.
        pres, _ = await self.join(carol, nowhere, "carol")
        if pres is None:
            obs = "no answer"
        elif pres.get("type") == "error":
            obs = "error %s" % error_condition(pres)
        else:
            obs = "joined, status %s" % ",".join(sorted(status_codes(pres)))
        if self.lync:
            ok = obs == "error item-not-found"
        else:
            ok = pres is not None and "201" in status_codes(pres)
            if ok:  # tidy: the new room goes again
                await carol.iq("set", nowhere, "<query xmlns='%s'><destroy/></query>" % NS_MUC_OWNER)
        self.check(ok, "no-create-by-join", "carol joining %s: %s" % (nowhere.split("@")[0], obs), observed=obs)

    async def auditorium(self):
        alice, bob = self.clients["alice"], self.clients["bob"]
        stage = self.rooms["stage"]
        pa, _ = await self.join(alice, stage, "alice")
        pb, sb = await self.join(bob, stage, "bob")
        if pa is None or pb is None or "error" in (pa.get("type"), pb.get("type")):
            self.step("FAIL", "auditorium-voice", "joining %s: alice %s, bob %s" % (
                self.args.names["stage"], None if pa is None else error_condition(pa) or "ok",
                None if pb is None else error_condition(pb) or "ok"))
            return
        role_a, role_b = muc_item(pa).get("role"), muc_item(pb).get("role")
        start = bob.mark()
        bob.send_xml("<message to='%s' type='groupchat' id='visitor1'><body>may I?</body></message>" % stage)
        err = await bob.wait_for(lambda el: el.tag == q(NS_CLIENT, "message") and el.get("type") == "error"
                                 and el.get("from") == stage, start)
        refused = error_condition(err) if err is not None else "not refused"
        text = "from the stage %s" % self.run_tag
        alice.send_xml("<message to='%s' type='groupchat'><body>%s</body></message>" % (stage, text))
        heard = await bob.wait_for(lambda el: body(el) == text, start)
        ok = role_b == "visitor" and refused == "forbidden" and role_a in ("participant", "moderator") and heard is not None
        self.check(ok, "auditorium-voice", "bob is %s, his post: %s; alice is %s, bob hears her: %s"
                   % (role_b, refused, role_a, heard is not None),
                   observed="visitor post %s, presenter heard %s" % (refused, heard is not None))
        await self.leave(alice, stage, "alice")
        await self.leave(bob, stage, "bob")

    async def affiliation(self):
        alice, carol = self.clients["alice"], self.clients["carol"]
        team = self.rooms["team"]
        typ, res = await alice.iq("set", team, "<query xmlns='%s'><item affiliation='member' jid='%s'/></query>"
                                  % (NS_MUC_ADMIN, self.jid("carol")))
        set_obs = typ if typ != "error" else "error %s" % res
        pres = None
        if typ == "result":
            await asyncio.sleep(0.5)  # perch applies store changes within a second
            pres, _ = await self.join(carol, team, "carol")
        joined = pres is not None and pres.get("type") != "error"
        typ, lst = await alice.iq("get", team, "<query xmlns='%s'><item affiliation='member'/></query>" % NS_MUC_ADMIN)
        members = set() if typ != "result" else {bare(i.get("jid")) for i in lst.iter(q(NS_MUC_ADMIN, "item"))}
        ok = set_obs == "result" and joined and self.jid("carol") in members
        self.check(ok, "affiliation-change", "alice makes carol a member of %s: %s; carol joins: %s; member list has her: %s"
                   % (self.args.names["team"], set_obs, "ok" if joined else (error_condition(pres) if pres is not None else "no answer"),
                      self.jid("carol") in members), observed="set %s, join %s" % (set_obs, joined))
        if joined:
            await self.leave(carol, team, "carol")

    # ---------------------------------------------------------------- Lync rules, leave
    async def nick_and_pm(self):
        alice, bob, carol = self.clients["alice"], self.clients["bob"], self.clients["carol"]
        lobby = self.rooms["lobby"]
        # INTENDED.md#nick-is-local-part
        asked = "Carol Q"
        pres, _ = await self.join(carol, lobby, asked)
        if pres is None or pres.get("type") == "error":
            self.step("FAIL", "nick", "carol joining Lobby: %s" % (error_condition(pres) if pres is not None else "no answer"))
            self.carol_nick = None
        else:
            got, codes = resource(pres.get("from")), status_codes(pres)
            self.carol_nick = got
            obs = "nick %s%s" % ("local part" if got == "carol" else "as asked" if got == asked else repr(got),
                                 ", status 210" if "210" in codes else "")
            ok = (got == "carol" and "210" in codes) if self.lync else (got == asked and "210" not in codes)
            self.check(ok, "nick", "carol asked for %r and is %r (status %s)" % (asked, got, ",".join(sorted(codes))),
                       observed=obs)
        # INTENDED.md#no-private-messages
        sa, sb = alice.mark(), bob.mark()
        text = "private %s" % self.run_tag
        alice.send_xml("<message to='%s/bob' type='chat' id='pm1'><body>%s</body><x xmlns='%s'/></message>"
                       % (lobby, text, NS_MUC_USER))
        got = await bob.wait_for(lambda el: body(el) == text, sb, timeout=3)
        err = alice.all_since(sa, lambda el: el.get("type") == "error" and el.get("id") == "pm1")
        obs = "delivered" if got is not None else ("refused %s" % error_condition(err[0]) if err else "dropped silently")
        ok = obs.startswith("refused") if self.lync else obs == "delivered"
        self.check(ok, "private-message", "alice's private message to bob in Lobby: %s" % obs, observed=obs)

    async def leave_step(self):
        alice, bob, carol = self.clients["alice"], self.clients["bob"], self.clients["carol"]
        lobby = self.rooms["lobby"]
        if not getattr(self, "carol_nick", None):
            self.step("FAIL", "leave", "carol is not in Lobby")
            return
        occ = "%s/%s" % (lobby, self.carol_nick)
        sa, sb, sc = alice.mark(), bob.mark(), carol.mark()
        await self.leave(carol, lobby, self.carol_nick)
        own = await carol.wait_for(self.presence_from(occ, "unavailable"), sc)
        seen_a = await alice.wait_for(self.presence_from(occ, "unavailable"), sa)
        seen_b = await bob.wait_for(self.presence_from(occ, "unavailable"), sb)
        codes = status_codes(own) if own is not None else set()
        ok = own is not None and "110" in codes and seen_a is not None and seen_b is not None
        self.check(ok, "leave", "carol's own unavailable presence: %s (status %s); alice saw it: %s, bob: %s"
                   % (own is not None, ",".join(sorted(codes)), seen_a is not None, seen_b is not None),
                   observed="self 110 %s, others %s" % ("110" in codes, seen_a is not None and seen_b is not None))

    async def main(self):
        steps_after_signin = [self.room_info, self.join_history, self.post_receive, self.mam_steps,
                              self.refusals, self.auditorium, self.affiliation, self.nick_and_pm, self.leave_step]
        try:
            if not await self.signin():
                return
            if self.args.create_rooms:
                await create_rooms(self)
            if not await self.disco():
                return
            for fn in steps_after_signin:
                try:
                    if await fn() is False:
                        break
                except Exception as e:  # a crash in one step is that step's failure
                    self.step("FAIL", fn.__name__.replace("_", "-"), "crashed: %r" % e)
        finally:
            for c in self.clients.values():
                c.disconnect()
            await asyncio.sleep(0.3)


async def create_rooms(run):
    """Prosody: alice creates and configures the four rooms (XEP-0045 10.1), then leaves them."""
    a, alice = run.args, run.clients["alice"]
    config = {
        "lobby": {"muc#roomconfig_membersonly": "0", "muc#roomconfig_publicroom": "1", "muc#roomconfig_moderatedroom": "0"},
        "team": {"muc#roomconfig_membersonly": "1", "muc#roomconfig_publicroom": "1", "muc#roomconfig_moderatedroom": "0"},
        "hideout": {"muc#roomconfig_membersonly": "1", "muc#roomconfig_publicroom": "0", "muc#roomconfig_moderatedroom": "0"},
        "stage": {"muc#roomconfig_membersonly": "0", "muc#roomconfig_publicroom": "1", "muc#roomconfig_moderatedroom": "1"},
    }
    problems = []
    for role in ROLES:
        name = a.names[role]
        room = a.room_jids.get(name) or "%s@%s" % (name.lower(), run.muc)
        a.room_jids[name] = room
        pres, _ = await run.join(alice, room, "alice")
        if pres is None or pres.get("type") == "error":
            problems.append("%s: join %s" % (name, None if pres is None else error_condition(pres)))
            continue
        values = dict(config[role], **{"muc#roomconfig_roomname": name, "muc#roomconfig_persistentroom": "1",
                                       "muc#roomconfig_enablearchiving": "1"})
        form = "<x xmlns='%s' type='submit'><field var='FORM_TYPE'><value>%s#roomconfig</value></field>%s</x>" % (
            NS_XDATA, NS_MUC, "".join("<field var='%s'><value>%s</value></field>" % kv for kv in values.items()))
        typ, res = await alice.iq("set", room, "<query xmlns='%s'>%s</query>" % (NS_MUC_OWNER, form))
        if typ != "result":
            problems.append("%s: config %s %s" % (name, typ, res))
        if role == "team":
            typ, res = await alice.iq("set", room, "<query xmlns='%s'><item affiliation='member' jid='%s'/></query>"
                                      % (NS_MUC_ADMIN, run.jid("bob")))
            if typ != "result":
                problems.append("%s: bob member %s %s" % (name, typ, res))
        await run.leave(alice, room, "alice")
    await asyncio.sleep(0.3)
    print("%s rooms-created: %s" % ("FAIL" if problems else "INFO", "; ".join(problems) or
                                     ", ".join(a.room_jids[a.names[r]] for r in ROLES)), flush=True)


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--starttls-port", type=int, required=True)
    p.add_argument("--tls-port", type=int, default=0, help="direct TLS (XEP-0368); 0: not tested")
    p.add_argument("--domain", required=True)
    p.add_argument("--muc", required=True, help="the MUC service's JID, e.g. conference.example.test")
    p.add_argument("--ca", help="PEM file the server certificate must chain to")
    p.add_argument("--user", action="append", default=[], help="alice:PASSWORD, bob:…, carol:…")
    p.add_argument("--room", action="append", default=[],
                   help="ROLE=NAME with ROLE one of lobby, team, hideout, stage (defaults: Lobby, Team, Hideout, Stage)")
    p.add_argument("--room-jid", action="append", default=[], help="NAME=JID for a room disco#items does not list")
    p.add_argument("--profile", choices=("xep0045", "lync"), required=True)
    p.add_argument("--create-rooms", action="store_true")
    p.add_argument("--json", help="write the steps and what was observed here")
    p.add_argument("--debug-log", help="slixmpp's debug log (the stanzas) goes here")
    a = p.parse_args()
    a.passwords = dict(u.split(":", 1) for u in a.user)
    for u in ("alice", "bob", "carol"):
        if u not in a.passwords:
            p.error("--user %s:PASSWORD is needed" % u)
    a.names = {"lobby": "Lobby", "team": "Team", "hideout": "Hideout", "stage": "Stage"}
    a.names.update(dict(r.split("=", 1) for r in a.room))
    a.room_jids = dict(r.split("=", 1) for r in a.room_jid)
    return a


def run_and_report(args, runner, steps):
    """Runs `steps()` (slixmpp's debug log to --debug-log if given), writes `runner`'s steps
    to --json, and exits 1 if one of them failed. Shared with resume_check.py."""
    if args.debug_log:
        logging.basicConfig(filename=args.debug_log, level=logging.DEBUG,
                            format="%(asctime)s %(name)s %(message)s")
    asyncio.run(steps())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"order": runner.order, "steps": runner.results}, f, indent=1)
    sys.exit(1 if any(r["verdict"] == "FAIL" for r in runner.results.values()) else 0)


def main():
    args = parse()
    run = Run(args)
    run_and_report(args, run, run.main)


if __name__ == "__main__":
    main()
