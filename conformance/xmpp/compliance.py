#!/usr/bin/env python3
"""Which XEP-0479 (XMPP Compliance Suites 2023) server features does the server claim?

Reads disco#info of the server, of alice's account (bare JID), of the MUC service and of a
room on it, plus the stream features seen at sign-in, and prints one INFO line per feature
the Core, IM and Group Chat parts of XEP-0479 require of a server (core and advanced
level), claimed or not. A feature that is claimed and then does not work is a FAIL; the
probes are kept simple: XEP-0199 ping of the server and of the MUC service, and disco#info
itself (XEP-0030), which every other line depends on.

The list follows XEP-0479 version 1.0 (2023): §2.1 Core Compliance Suite, §2.3 IM Compliance
Suite (group chat is its XEP-0045 / XEP-0313-on-MUC / XEP-0410 rows) and §2.4 Mobile (the
stream-management and CSI rows, which a gateway with mobile users also meets). Rows that a
server cannot show in disco (TLS, RFC 6121, XEP-0368 Direct TLS) are reported from what the
scenario run observed or as "not discoverable".
"""
import argparse
import asyncio
import sys

from muc_scenarios import NS_DISCO_INFO, NS_DISCO_ITEMS, Client, q

# (suite, level, XEP, name, where, how): where is server|account|muc|room|stream;
# how is a disco feature var, "identity:CATEGORY/TYPE", or a stream feature element tag.
FEATURES = [
    ("Core §2.1", "core", "XEP-0030", "Service Discovery", "server", "http://jabber.org/protocol/disco#info"),
    ("Core §2.1", "core", "XEP-0115", "Entity Capabilities", "stream", "{http://jabber.org/protocol/caps}c"),
    ("Core §2.1", "advanced", "XEP-0163", "Personal Eventing Protocol", "account", "identity:pubsub/pep"),
    ("Core §2.1", "advanced", "XEP-0368", "Direct TLS", "-", "see signin-direct-tls"),
    ("IM §2.3", "core", "RFC 6121", "roster and presence", "-", "not discoverable"),
    ("IM §2.3", "core", "XEP-0237", "Roster Versioning", "stream", "{urn:xmpp:features:rosterver}ver"),
    ("IM §2.3", "core", "XEP-0280", "Message Carbons", "server", "urn:xmpp:carbons:2"),
    ("IM §2.3", "core", "XEP-0191", "Blocking Command", "server", "urn:xmpp:blocking"),
    ("IM §2.3", "core", "XEP-0054", "vcard-temp", "server", "vcard-temp"),
    ("IM §2.3", "core", "XEP-0045", "Multi-User Chat (service)", "muc", "http://jabber.org/protocol/muc"),
    ("IM §2.3", "core", "XEP-0359", "Unique and Stable Stanza IDs (rooms)", "room", "urn:xmpp:sid:0"),
    ("IM §2.3", "advanced", "XEP-0313", "Message Archive Management (account)", "account", "urn:xmpp:mam:2"),
    ("IM §2.3", "advanced", "XEP-0313", "Message Archive Management (group chat)", "room", "urn:xmpp:mam:2"),
    ("IM §2.3", "advanced", "XEP-0410", "MUC Self-Ping (group chat)", "muc", "http://jabber.org/protocol/muc#self-ping-optimization"),
    ("IM §2.3", "advanced", "XEP-0398", "Avatar conversion", "server", "urn:xmpp:pep-vcard-conversion:0"),
    ("IM §2.3", "advanced", "XEP-0402", "PEP Native Bookmarks", "account", "urn:xmpp:bookmarks:1#compat"),
    ("IM §2.3", "advanced", "XEP-0157", "Contact Addresses", "server", "http://jabber.org/network/serverinfo"),
    ("Mobile §2.4", "core", "XEP-0198", "Stream Management", "stream", "{urn:xmpp:sm:3}sm"),
    ("Mobile §2.4", "core", "XEP-0352", "Client State Indication", "stream", "{urn:xmpp:csi:0}csi"),
    ("(probe)", "-", "XEP-0199", "XMPP Ping (server)", "server", "urn:xmpp:ping"),
]


class FeatureClient(Client):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.stream_features = set()

    def _watch_in(self, stanza):
        if stanza.xml.tag == "{http://etherx.jabber.org/streams}features":
            self.stream_features |= {child.tag for child in stanza.xml}
        return super()._watch_in(stanza)


async def disco(c, jid):
    typ, info = await c.iq("get", jid, "<query xmlns='%s'/>" % NS_DISCO_INFO)
    if typ != "result":
        return None
    feats = {f.get("var") for f in info.iter(q(NS_DISCO_INFO, "feature"))}
    feats |= {"identity:%s/%s" % (i.get("category"), i.get("type")) for i in info.iter(q(NS_DISCO_INFO, "identity"))}
    return feats


async def main(a):
    c = FeatureClient("alice@%s" % a.domain, a.password, a.ca, False)
    c.connect(a.host, a.port)
    try:
        await asyncio.wait_for(c.ready.wait(), 12)
    except asyncio.TimeoutError:
        c.failed = "no session"
    if c.failed:
        print("FAIL xep0479-signin: %s" % c.failed)
        return 1
    fails = 0
    try:
        where = {"server": await disco(c, a.domain), "account": await disco(c, "alice@%s" % a.domain),
                 "muc": await disco(c, a.muc), "stream": c.stream_features}
        if where["server"] is None:
            print("FAIL xep0479-disco: the server answers no disco#info (XEP-0030)")
            return 1
        print("PASS xep0479-disco: disco#info of the server: %d features; account: %s; MUC service: %s"
              % (len(where["server"]), "answered" if where["account"] is not None else "no answer",
                 "answered" if where["muc"] is not None else "no answer"))
        typ, items = await c.iq("get", a.muc, "<query xmlns='%s'/>" % NS_DISCO_ITEMS)
        rooms = [] if typ != "result" else [i.get("jid") for i in items.iter(q(NS_DISCO_ITEMS, "item"))]
        where["room"] = await disco(c, rooms[0]) if rooms else None
        for suite, level, xep, name, at, how in FEATURES:
            if at == "-":
                print("INFO xep0479 %s %s %s %s: %s" % (suite, level, xep, name, how))
                continue
            have = where.get(at)
            state = "no answer from %s" % at if have is None else ("claimed" if how in have else "not claimed")
            print("INFO xep0479 %s %s %s %s: %s (%s %s)" % (suite, level, xep, name, state, at, how))
        # Probes: what is claimed must work.
        for at, jid in (("server", a.domain), ("muc", a.muc)):
            if where.get(at) and "urn:xmpp:ping" in where[at]:
                typ, res = await c.iq("get", jid, "<ping xmlns='urn:xmpp:ping'/>")
                ok = typ == "result"
                fails += not ok
                print("%s xep0479-ping-%s: %s claims urn:xmpp:ping; ping answered %s"
                      % ("PASS" if ok else "FAIL", at, jid, typ if ok else "%s %s" % (typ, res)))
            else:
                print("INFO xep0479-ping-%s: %s does not claim urn:xmpp:ping; not probed" % (at, jid))
    finally:
        c.disconnect()
        await asyncio.sleep(0.3)
    return 1 if fails else 0


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="the STARTTLS port")
    p.add_argument("--domain", required=True)
    p.add_argument("--muc", required=True)
    p.add_argument("--ca")
    p.add_argument("--user", required=True, help="alice:PASSWORD")
    a = p.parse_args()
    a.password = a.user.split(":", 1)[1]
    return a


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
