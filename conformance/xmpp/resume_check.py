#!/usr/bin/env python3
"""XEP-0198 stream resumption with slixmpp's own xep_0198 plugin, against one server.

The same script runs against Prosody (mod_smacks) and against perch. alice signs in with
slixmpp's stream management plugin (resumption asked for, as the plugin does by default),
joins the room, and her TCP connection is then cut without `</stream:stream>` (the socket is
reset: SO_LINGER 0 and the transport aborted), as when a phone changes networks. While she
is away bob posts. alice then connects again, as a client does after losing its connection
(slixmpp leaves reconnecting to the application; its plugin then sends `<resume/>` by itself
before binding). The steps:

  resume-enable      <enabled resume='true'> with an id (the SM id, in the reason)
  resume-resumed     `session_resumed` fired (`<resumed previd=…>` with that id), no fresh
                     session (`session_start` once in all, no `sm_failed`), and the server's h
                     counts every stanza alice sent, so the plugin resends nothing
  resume-missed-once bob's post, made while alice was away, reaches her exactly once
  resume-no-leave    bob saw no unavailable presence of alice, nor a new join: she never left
  resume-post-after  alice posts on the resumed stream; bob receives it, alice her reflection

Every step prints `PASS|FAIL|SKIP name: reason` and is written to --json like
muc_scenarios.py's, for diff.py. alice's stanzas go through slixmpp's stanza objects (never
send_raw), so that the plugin counts them as the server does.
"""
import argparse
import asyncio
import socket
import struct
import time
import uuid
import xml.etree.ElementTree as ET

from muc_scenarios import (NS_CLIENT, NS_DISCO_ITEMS, NS_MUC, Client, body, q, run_and_report,
                            sign_in)

SM_ENABLE_WAIT = 12.0


class Resumable(Client):
    """A Client with slixmpp's xep_0198 plugin, and a record of its stream management events."""

    def __init__(self, jid, password, ca, direct_tls):
        super().__init__(jid, password, ca, direct_tls)
        self.register_plugin("xep_0198")  # allow_resume is True by default
        self.events = []  # (name, stanza xml or None), in order
        self.changed = asyncio.Event()
        for name in ("session_start", "sm_enabled", "session_resumed", "sm_failed", "session_end", "disconnected"):
            self.add_event_handler(name, lambda ev, name=name: self._note(name, ev))

    def _note(self, name, ev):
        self.events.append((name, getattr(ev, "xml", None)))
        self.changed.set()

    def count(self, name):
        return sum(1 for n, _ in self.events if n == name)

    async def wait_event(self, names, start, timeout):
        """The first of `names` among the events from index `start` on, or None."""
        deadline = time.monotonic() + timeout
        while True:
            for n, x in self.events[start:]:
                if n in names:
                    return n, x
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    @property
    def sm(self):
        return self.plugin["xep_0198"]

    def post(self, room, text):
        self.make_message(mto=room, mbody=text, mtype="groupchat").send()

    def join(self, room, nick):
        p = self.make_presence(pto="%s/%s" % (room, nick))
        p.xml.append(ET.Element(q(NS_MUC, "x")))
        p.send()

    def drop(self):
        """Resets the TCP connection: no </stream:stream>, no TLS close_notify."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class Check:
    def __init__(self, args):
        self.args = args
        self.order, self.results = [], {}

    def step(self, verdict, name, reason, observed=None):
        print("%s %s: %s" % (verdict, name, reason), flush=True)
        self.order.append(name)
        self.results[name] = {"verdict": verdict, "reason": reason,
                              "observed": reason if observed is None else observed}

    def check(self, ok, name, reason, observed=None):
        self.step("PASS" if ok else "FAIL", name, reason, observed)
        return ok

    def skip_rest(self, after, why):
        names = ["resume-enable", "resume-resumed", "resume-missed-once", "resume-no-leave", "resume-post-after"]
        for n in names[names.index(after) + 1:]:
            self.step("FAIL", n, "not run: %s" % why)

    async def find_room(self, c):
        a = self.args
        if a.room_jid:
            return a.room_jid
        typ, items = await c.iq("get", a.muc, "<query xmlns='%s'/>" % NS_DISCO_ITEMS)
        if typ != "result":
            return None
        for i in items.iter(q(NS_DISCO_ITEMS, "item")):
            if (i.get("name") or "") == a.room:
                return i.get("jid")
        return None

    async def run(self):
        a = self.args
        bob, err = await sign_in(a, "bob")
        if err:
            self.step("FAIL", "resume-enable", "bob could not sign in: %s" % err)
            return self.skip_rest("resume-enable", "no bob")
        alice = Resumable("alice@%s" % a.domain, a.passwords["alice"], a.ca, False)
        clients = [alice, bob]
        try:
            await self.scenario(alice, bob)
        finally:
            for c in clients:
                if c.transport is not None:
                    c.disconnect()
            await asyncio.sleep(0.5)

    async def scenario(self, alice, bob):
        a = self.args
        # 1. alice signs in; the plugin enables stream management with resumption.
        alice.connect(a.host, a.starttls_port)
        got = await alice.wait_event(("sm_enabled", "sm_failed"), 0, SM_ENABLE_WAIT)
        enabled = got[1] if got and got[0] == "sm_enabled" else None
        sm_id = enabled.get("id") if enabled is not None else None
        resumable = enabled is not None and enabled.get("resume") in ("true", "1")
        if not self.check(bool(sm_id) and resumable and alice.count("session_start") == 1, "resume-enable",
                          "alice's <enable resume='true'/>: %s" % (
                              "no answer in %.0f s (failed: %s)" % (SM_ENABLE_WAIT, alice.failed) if got is None
                              else "<failed/>" if enabled is None
                              else "<enabled id=%r resume=%r max=%r/>" % (sm_id, enabled.get("resume"), enabled.get("max"))),
                          observed="enabled, resume %s, id %s" % (resumable, bool(sm_id))):
            return self.skip_rest("resume-enable", "stream management not enabled with resumption")
        room = await self.find_room(alice)
        if room is None:
            self.step("FAIL", "resume-resumed", "room %r not found in disco#items of %s" % (a.room, a.muc))
            return self.skip_rest("resume-resumed", "no room")
        nick_a, nick_b = "alice", "bob"  # perch gives the local part whatever is asked
        for c, nick in ((bob, nick_b), (alice, nick_a)):
            start = c.mark()
            if c is alice:
                c.join(room, nick)
            else:
                c.send_xml("<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, nick, NS_MUC))
            pres = await c.wait_for(lambda el: el.tag == q(NS_CLIENT, "presence") and el.get("from") == "%s/%s" % (room, nick),
                                    start)
            if pres is None or pres.get("type") == "error":
                self.step("FAIL", "resume-resumed", "%s could not join %s: %s" % (
                    nick, room, "no answer" if pres is None else ET.tostring(pres, encoding="unicode")))
                return self.skip_rest("resume-resumed", "not in the room")
        occupant_a = "%s/%s" % (room, nick_a)
        # bob must have seen alice's join before the cut, so that what he sees later is about the cut.
        await bob.wait_for(lambda el: el.tag == q(NS_CLIENT, "presence") and el.get("from") == occupant_a, 0)
        await asyncio.sleep(0.5)
        tag = uuid.uuid4().hex[:8]

        # 2. the cut: no </stream:stream>.
        sent_before = alice.sm.seq
        a0, b0, e0 = alice.mark(), bob.mark(), len(alice.events)
        alice.drop()
        lost = await alice.wait_event(("disconnected",), e0, 5)
        await asyncio.sleep(1.0)  # the server reads the reset and parks (or hibernates) the session

        # 3. bob posts while alice is away.
        away = "while away %s" % tag
        bob.send_xml("<message to='%s' type='groupchat'><body>%s</body></message>" % (room, away))
        echo = await bob.wait_for(lambda el: body(el) == away, b0)
        await asyncio.sleep(1.5)  # perch moves a parked session's mail once a second

        # 4. alice connects again; the plugin resumes before binding.
        e1 = len(alice.events)
        alice.connect(a.host, a.starttls_port)
        got = await alice.wait_event(("session_resumed", "sm_failed", "session_start"), e1, 15)
        resumed = got[1] if got and got[0] == "session_resumed" else None
        if got is not None and got[0] == "sm_failed":  # the plugin then binds anew: wait for it, to say so
            await alice.wait_event(("session_start",), e1, 6)
        previd = resumed.get("previd") if resumed is not None else None
        h = resumed.get("h") if resumed is not None else None
        h_ok = h is not None and int(h) == sent_before
        fresh = alice.count("session_start") > 1
        failed = alice.count("sm_failed") > 0
        ok = resumed is not None and previd == sm_id and not fresh and not failed and h_ok and lost is not None
        self.check(ok, "resume-resumed", "after the reset (client saw it: %s; bob's post echoed: %s), %s; "
                   "session_start %d time(s) in all, sm_failed %d" % (
                       lost is not None, echo is not None,
                       "no answer in 15 s" if got is None else
                       "<resumed previd=%r h=%r/> (alice had sent %d stanzas since <enable/>)" % (previd, h, sent_before)
                       if resumed is not None else "%s instead of session_resumed" % got[0],
                       alice.count("session_start"), alice.count("sm_failed")),
                   observed="resumed %s, same id %s, fresh session %s, h counts all %s" % (
                       resumed is not None, previd == sm_id, fresh, h_ok))

        # 4b. bob's post reaches alice exactly once.
        await alice.wait_for(lambda el: body(el) == away, a0)
        await asyncio.sleep(1.5)  # room for a duplicate to show
        copies = alice.all_since(a0, lambda el: el.tag == q(NS_CLIENT, "message") and body(el) == away)
        from_room = all(el.get("from") == "%s/%s" % (room, nick_b) for el in copies)
        self.check(len(copies) == 1 and from_room, "resume-missed-once",
                   "bob's post while alice was away reached her %d time(s)%s" % (
                       len(copies), "" if from_room or not copies else " (from %s)" % ", ".join(
                           sorted({el.get("from") or "" for el in copies}))),
                   observed="copies %d" % len(copies))

        # 4d. alice posts on the resumed stream.
        after = "back again %s" % tag
        a1, b1 = alice.mark(), bob.mark()
        if resumed is not None or fresh:
            alice.post(room, after)
        heard = await bob.wait_for(lambda el: body(el) == after, b1)
        reflected = await alice.wait_for(lambda el: body(el) == after, a1)

        # 4c. bob saw alice neither leave nor join again (checked last: it covers the whole time).
        left = bob.all_since(b0, lambda el: el.tag == q(NS_CLIENT, "presence") and el.get("from") == occupant_a
                             and el.get("type") == "unavailable")
        rejoined = bob.all_since(b0, lambda el: el.tag == q(NS_CLIENT, "presence") and el.get("from") == occupant_a
                                 and el.get("type") is None)
        self.check(not left and not rejoined, "resume-no-leave",
                   "bob saw %d unavailable and %d available presence(s) of %s from the cut to alice's next post"
                   % (len(left), len(rejoined), occupant_a),
                   observed="unavailable %d, rejoin %d" % (len(left), len(rejoined)))
        self.check(heard is not None and heard.get("from") == occupant_a and reflected is not None,
                   "resume-post-after", "alice's post after resuming: bob received it %s, alice her reflection: %s" % (
                       "from %s" % heard.get("from") if heard is not None else "not at all", reflected is not None),
                   observed="bob %s, reflection %s" % (heard is not None, reflected is not None))
        # Tidy: alice leaves the room before the clean close.
        p = alice.make_presence(pto=occupant_a, ptype="unavailable")
        p.send()
        await asyncio.sleep(0.3)


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--starttls-port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--muc", required=True)
    p.add_argument("--ca", help="PEM file the server certificate must chain to")
    p.add_argument("--user", action="append", default=[], help="alice:PASSWORD, bob:PASSWORD")
    p.add_argument("--room", default="Lobby", help="the room's name in disco#items (default Lobby)")
    p.add_argument("--room-jid", help="the room's JID, when disco#items does not list it")
    p.add_argument("--json", help="write the steps and what was observed here")
    p.add_argument("--debug-log", help="slixmpp's debug log (the stanzas) goes here")
    a = p.parse_args()
    a.passwords = dict(u.split(":", 1) for u in a.user)
    for u in ("alice", "bob"):
        if u not in a.passwords:
            p.error("--user %s:PASSWORD is needed" % u)
    a.tls_port = 0
    return a


def main():
    args = parse()
    check = Check(args)
    run_and_report(args, check, check.run)


if __name__ == "__main__":
    main()
