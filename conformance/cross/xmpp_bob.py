#!/usr/bin/env python3
"""bob on slixmpp, in the same room as alice on Pidgin-SIPE (cross/sipe_alice.py).

Runs in the xmpp suite's venv and reuses its client (xmpp/muc_scenarios.py: slixmpp for the
stream, TLS and SASL, raw stanzas above that). The room is found by disco#items on the MUC
service, by its name. The two scripts meet through files in --cues. What bob observed goes
to --json; cross/check.py judges it.
"""
import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "xmpp"))
from cues import Aborted, Cues  # noqa: E402
from muc_scenarios import (NS_CLIENT, NS_DISCO_ITEMS, NS_MAM, NS_FORWARD, NS_MUC, body, q,  # noqa: E402
                           sign_in, stanza_id, status_codes)




def xml(el):
    return ET.tostring(el, encoding="unicode") if el is not None else None


def summary(pres):
    """A presence in one short line: from, type, muc#user item and status codes."""
    if pres is None:
        return None
    item = pres.find(q(NS_MUC + "#user", "x") + "/" + q(NS_MUC + "#user", "item"))
    parts = ["from=%s" % pres.get("from"), "type=%s" % (pres.get("type") or "available")]
    if item is not None:
        parts += ["%s=%s" % (k, item.get(k)) for k in ("role", "affiliation", "jid") if item.get(k)]
    codes = sorted(status_codes(pres))
    if codes:
        parts.append("status=%s" % ",".join(codes))
    return " ".join(parts)


async def run(a, obs, cues):
    c, err = await sign_in(a, "bob")
    if err:
        raise Aborted("bob could not sign in: %s" % err)
    obs["signin"] = "bob@%s over STARTTLS, %s, %s" % (a.domain, c.tls_version(), c.sent_mech)
    try:
        typ, items = await c.iq("get", a.muc, "<query xmlns='%s'/>" % NS_DISCO_ITEMS)
        rooms = {i.get("name"): i.get("jid") for i in items.iter(q(NS_DISCO_ITEMS, "item"))} if typ == "result" else {}
        room = rooms.get(a.room_name)
        if not room:
            raise Aborted("room %r not in disco#items of %s: %s" % (a.room_name, a.muc, rooms))
        obs["room"] = room
        alice_occ = "%s/%s" % (room, a.peer_nick)

        def presence(frm, typ=None):
            return lambda el: el.tag == q(NS_CLIENT, "presence") and el.get("from") == frm and el.get("type") == typ

        async def join():
            start = c.mark()
            c.send_xml("<presence to='%s/bob'><x xmlns='%s'/></presence>" % (room, NS_MUC))
            own = await c.wait_for(lambda el: el.tag == q(NS_CLIENT, "presence") and el.get("from", "").startswith(room)
                                   and (el.get("type") == "error" or "110" in status_codes(el)), start)
            if own is None or own.get("type") == "error":
                raise Aborted("bob could not join %s: %s" % (room, xml(own)))
            return own, start

        async def post(text):
            start = c.mark()
            c.send_xml("<message to='%s' type='groupchat' id='%s'><body>%s</body></message>"
                       % (room, uuid.uuid4().hex[:8], escape(text)))
            echo = await c.wait_for(lambda el: el.get("type") == "groupchat" and body(el) == text, start)
            if echo is None:
                raise Aborted("bob's post %r was not reflected" % text)
            return stanza_id(echo, room)

        # 1. bob joins and posts before alice comes.
        own, _ = await join()
        tag = uuid.uuid4().hex[:8]
        b1 = "bob over XMPP, before alice joined #%s" % tag
        obs["b1"] = {"text": b1, "id": await post(b1)}
        mark = c.mark()
        cues.put("bob-ready", {"room": room, "b1": obs["b1"]})

        # 2. alice (SIPE) joins: her occupant presence.
        await cues.wait_async("alice-joined")
        pres = await c.wait_for(presence(alice_occ), mark, timeout=10)
        obs["alice_join"] = summary(pres)
        cues.put("bob-saw-alice")

        # 3. alice's post reaches bob, with a stanza-id by the room.
        a1 = await cues.wait_async("alice-posted")
        got = await c.wait_for(lambda el: el.tag == q(NS_CLIENT, "message") and el.get("type") == "groupchat"
                               and body(el) == a1["text"], mark, timeout=10)
        obs["a1"] = {"text": a1["text"], "stanza": xml(got), "from": got.get("from") if got is not None else None,
                     "id": stanza_id(got, room) if got is not None else None}

        # 4. bob answers.
        b2 = "bob over XMPP & <XMPP> replies #%s" % tag
        obs["b2"] = {"text": b2, "id": await post(b2)}
        cues.put("bob-posted", {"text": b2})
        await cues.wait_async("alice-got-b2")

        # 5. bob leaves and comes back.
        start = c.mark()
        c.send_xml("<presence to='%s/bob' type='unavailable'/>" % room)
        own = await c.wait_for(presence(room + "/bob", "unavailable"), start)
        obs["left"] = summary(own)
        cues.put("bob-left")
        await cues.wait_async("alice-saw-bob-leave")
        own, start = await join()
        obs["rejoin_sees_alice"] = summary(await c.wait_for(presence(alice_occ), start, timeout=1))
        cues.put("bob-rejoined")
        await cues.wait_async("alice-saw-bob-join")

        # 6. the archive (MAM, XEP-0313) of the room, oldest first.
        qid = uuid.uuid4().hex[:10]
        start = c.mark()
        typ, res = await c.iq("set", room, "<query xmlns='%s' queryid='%s'/>" % (NS_MAM, qid))
        mam = []
        for el in c.all_since(start, lambda el: el.find(q(NS_MAM, "result")) is not None):
            r = el.find(q(NS_MAM, "result"))
            if r.get("queryid") == qid:
                m = r.find(q(NS_FORWARD, "forwarded") + "/" + q(NS_CLIENT, "message"))
                mam.append((r.get("id"), body(m) if m is not None else None,
                            m.get("from") if m is not None else None))
        obs["mam"] = {"iq": typ, "results": mam}
        mark = c.mark()
        cues.put("bob-mam", {"ids": [i for i, _b, _f in mam]})

        # 7. alice parts (SIPE cmd:part), then joins again.
        await cues.wait_async("alice-left")
        gone = await c.wait_for(presence(alice_occ, "unavailable"), mark, timeout=10)
        obs["alice_leave"] = summary(gone)
        mark = c.mark()
        cues.put("bob-saw-alice-leave")
        await cues.wait_async("alice-rejoined")
        back = await c.wait_for(presence(alice_occ), mark, timeout=10)
        obs["alice_rejoin"] = summary(back)
        mark = c.mark()
        cues.put("bob-saw-alice-rejoin")

        # 8. alice signs out (SIPE's BYE, no cmd:part): bob sees her go once more.
        await cues.wait_async("alice-done", timeout=40)
        gone = await c.wait_for(presence(alice_occ, "unavailable"), mark, timeout=10)
        obs["alice_signout"] = summary(gone)
        c.send_xml("<presence to='%s/bob' type='unavailable'/>" % room)
        await asyncio.sleep(0.3)
    finally:
        c.disconnect()
        await asyncio.sleep(0.3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--starttls-port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--muc", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--room-name", required=True)
    p.add_argument("--peer-nick", default="alice")
    p.add_argument("--cues", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--debug-log")
    a = p.parse_args()
    a.passwords = {"bob": a.password}
    a.tls_port = 0
    if a.debug_log:
        logging.basicConfig(filename=a.debug_log, level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    cues = Cues(a.cues, "bob", "alice")
    obs = {"error": None}
    try:
        asyncio.run(run(a, obs, cues))
    except Aborted as e:
        obs["error"] = str(e)
        cues.abort(str(e))
        print("bob: %s" % e, file=sys.stderr, flush=True)
    except Exception as e:
        obs["error"] = "crashed: %r" % e
        cues.abort(obs["error"])
        raise
    finally:
        with open(a.json, "w") as f:
            json.dump(obs, f, indent=1)


if __name__ == "__main__":
    main()
