#!/usr/bin/env python3
"""A second, independent XMPP stack: aioxmpp (pyOpenSSL TLS, aiosasl SASL) against one server.

Steps, each one `PASS|FAIL aioxmpp-STEP: reason` line:
  aioxmpp-signin    alice and bob sign in over STARTTLS (required), the certificate verified
                    against --ca for the domain, with SCRAM only (PLAIN is not offered to
                    aiosasl); the SCRAM hash used is reported
  aioxmpp-join      both join the room named Lobby, found by name with disco#items
  aioxmpp-post      alice posts, bob receives it from Lobby/alice
"""
import argparse
import asyncio
import logging
import sys
import uuid

import aiosasl
import aioxmpp
import aioxmpp.connector
import aioxmpp.disco
import aioxmpp.muc
import aioxmpp.security_layer as sl
import OpenSSL.SSL

TIMEOUT = 10


def say(verdict, step, reason):
    print("%s aioxmpp-%s: %s" % (verdict, step, reason), flush=True)
    return verdict == "PASS"


class RecordingSCRAMOnly(sl.PasswordSASLProvider):
    """The stock password provider, limited to SCRAM and recording what it picked."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.used = None

    def _find_supported(self, features, mechanism_classes):
        cls, token = super()._find_supported(features, [c for c in mechanism_classes if c is aiosasl.SCRAM])
        self.used = token
        return cls, token


def make_client(args, user):
    jid = aioxmpp.JID.fromstr("%s@%s" % (user, args.domain))

    def ctx_factory():
        ctx = OpenSSL.SSL.Context(OpenSSL.SSL.TLS_CLIENT_METHOD)
        ctx.set_verify(OpenSSL.SSL.VERIFY_PEER, lambda *a: a[-1])
        if args.ca:
            ctx.load_verify_locations(args.ca)
        return ctx

    async def password(_jid, _attempt):
        return args.passwords[user]

    sasl = RecordingSCRAMOnly(password)
    layer = sl.SecurityLayer(ctx_factory, sl.PKIXCertificateVerifier, True, (sasl,))
    peer = [(args.host, args.port, aioxmpp.connector.STARTTLSConnector())]
    client = aioxmpp.PresenceManagedClient(jid, layer, override_peer=peer)
    return client, sasl


async def main(args):
    alice, sa = make_client(args, "alice")
    bob, sb = make_client(args, "bob")
    stack = []
    try:
        for c in (alice, bob):
            cm = c.connected()
            await asyncio.wait_for(cm.__aenter__(), TIMEOUT)
            stack.append(cm)
        mech = sa.used
        ok = mech is not None and "SHA-256" in str(mech)
        say("PASS" if ok else "FAIL", "signin",
            "alice and bob signed in over STARTTLS with SCRAM (aiosasl chose %s)" % (mech[0] if isinstance(mech, tuple) else mech,))
    except Exception as e:
        say("FAIL", "signin", "sign-in failed: %r" % e)
        return 1
    try:
        disco = alice.summon(aioxmpp.DiscoClient)
        items = await asyncio.wait_for(disco.query_items(aioxmpp.JID.fromstr(args.muc)), TIMEOUT)
        rooms = {i.name: i.jid for i in items.items}
        if args.lobby not in rooms:
            say("FAIL", "join", "no room named %s in disco#items of %s: %s" % (args.lobby, args.muc, sorted(rooms)))
            return 1
        lobby = rooms[args.lobby]
        joined = []
        for c, nick in ((alice, "alice"), (bob, "bob")):
            muc = c.summon(aioxmpp.MUCClient)
            room, fut = muc.join(lobby, nick, history=aioxmpp.muc.xso.History(maxstanzas=0))
            await asyncio.wait_for(fut, TIMEOUT)
            joined.append(room)
        say("PASS", "join", "alice and bob joined %s (%s) as %s" % (args.lobby, lobby,
                                                                  ", ".join(r.me.nick for r in joined)))
        heard = asyncio.get_running_loop().create_future()
        text = "aioxmpp post %s" % uuid.uuid4().hex[:8]

        def on_message(message, member, source, **kwargs):
            if message.body.any() == text and not heard.done():
                heard.set_result(str(message.from_))
        joined[1].on_message.connect(on_message)
        msg = aioxmpp.Message(type_=aioxmpp.MessageType.GROUPCHAT, to=lobby)
        msg.body[None] = text
        await alice.send(msg)
        frm = await asyncio.wait_for(heard, TIMEOUT)
        ok = frm == "%s/%s" % (lobby, joined[0].me.nick)
        say("PASS" if ok else "FAIL", "post", "bob received alice's post from %s" % frm)
        for r in joined:
            await asyncio.wait_for(r.leave(), TIMEOUT)
        return 0 if ok else 1
    except Exception as e:
        say("FAIL", "join" if "joined" not in locals() or len(joined) < 2 else "post", "%r" % e)
        return 1
    finally:
        for cm in stack:
            try:
                await asyncio.wait_for(cm.__aexit__(None, None, None), 5)
            except Exception:
                pass


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="the STARTTLS port")
    p.add_argument("--domain", required=True)
    p.add_argument("--muc", required=True)
    p.add_argument("--ca")
    p.add_argument("--user", action="append", default=[])
    p.add_argument("--lobby", default="Lobby", help="the open room's name")
    a = p.parse_args()
    a.passwords = dict(u.split(":", 1) for u in a.user)
    return a


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main(parse())))
