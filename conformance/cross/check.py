#!/usr/bin/env python3
"""Judges what alice (SIPE, cross/sipe_alice.py) and bob (XMPP, cross/xmpp_bob.py) observed.

Prints one PASS/FAIL line per check; a check whose evidence is missing (a side stopped
early) is a FAIL that says so.
"""
import argparse
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"error": "no observations (%s)" % e}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--alice", required=True)
    p.add_argument("--bob", required=True)
    p.add_argument("--alice-uri", default="sip:alice@example.test")
    p.add_argument("--bob-uri", default="sip:bob@example.test")
    a = p.parse_args()
    al, bo = load(a.alice), load(a.bob)
    lines = []

    def out(ok, name, detail):
        lines.append("%s %s: %s" % ("PASS" if ok else "FAIL", name, detail))

    room = bo.get("room")
    steps = al.get("steps", [])
    bad = [s["name"] for s in steps if not s["ok"]]
    out(bool(steps) and not bad and not al.get("error"), "sipe-steps",
        "harness steps for alice: %s" % ", ".join("%s %s" % ("ok" if s["ok"] else "FAILED", s["name"]) for s in steps)
        if steps else "none ran")
    out("signin" in bo, "xmpp-signin", bo.get("signin") or "bob did not sign in")
    if al.get("error"):
        lines.append("INFO alice-stopped: %s" % al["error"])
    if bo.get("error"):
        lines.append("INFO bob-stopped: %s" % bo["error"])

    # (a) joins
    r0, bj = al.get("roster_at_join"), al.get("bob_join") or {}
    ok = bool(r0) and a.bob_uri in r0 and bj.get("roster_added") and bj.get("ntc_join")
    out(ok, "join-seen-by-sipe",
        "alice's roster when she joined (rpl:join): %s; after bob left and joined again, ntc:join for %s: %s, roster %s"
        % (r0, a.bob_uri, bool(bj.get("ntc_join")), bj.get("roster")))
    j1, j2 = bo.get("alice_join"), bo.get("alice_rejoin")
    out(bool(j1) and bool(j2), "join-seen-by-xmpp",
        "bob got available presence from %s/alice when alice joined: %s; when she joined again: %s"
        % (room, j1 or "none", "yes" if j2 else "none"))

    # (b) posts
    a1, ba1 = al.get("a1") or {}, bo.get("a1") or {}
    ok = bool(ba1.get("stanza")) and ba1.get("from") == "%s/alice" % room
    out(ok, "post-sipe-to-xmpp", "alice posted %r through SIPE; bob got it from %s"
        % (a1.get("text"), ba1.get("from") or "nowhere"))
    b2 = al.get("b2") or {}
    shown = b2.get("shown") or []
    ok = bool(shown) and all(s == a.bob_uri for s, _t in shown) and len(shown) == 1
    out(ok, "post-xmpp-to-sipe", "bob posted %r over XMPP; SIPE shows it %d time(s), author %s"
        % ((bo.get("b2") or {}).get("text"), len(shown), sorted({s for s, _t in shown}) or "none"))

    # (c) ids of the live posts
    echo = [g for g in a1.get("log") or [] if g[1] == a.alice_uri]
    ids = sorted({g[0] for g in echo})
    ok = len(ids) == 1 and ids[0] == ba1.get("id")
    out(ok, "id-sipe-post", "msgid of alice's post in the grpchat perch echoed to SIPE: %s; stanza-id bob got (by %s): %s"
        % (ids or "none", room, ba1.get("id")))
    got = [g for g in b2.get("log") or [] if g[1] == a.bob_uri]
    ids = sorted({g[0] for g in got})
    bid = (bo.get("b2") or {}).get("id")
    out(len(ids) == 1 and ids[0] == bid, "id-xmpp-post",
        "msgid of bob's post in the grpchat SIPE received: %s; stanza-id of bob's reflection: %s" % (ids or "none", bid))
    b1 = bo.get("b1") or {}
    bcc1 = (al.get("bcc1") or {}).get("msgs") or []
    hit = [m for m in bcc1 if m[2] == b1.get("text")]
    ok = len(hit) == 1 and hit[0][0] == b1.get("id") and hit[0][1] == a.bob_uri
    out(ok, "id-join-history", "bob posted before alice joined (stanza-id %s); SIPE's bccontext on join: %s"
        % (b1.get("id"), ["%s %s" % (m[0], m[1]) for m in bcc1] or "empty"))

    # (d) both histories
    bcc2 = (al.get("bcc2") or {}).get("msgs") or []
    mam = (bo.get("mam") or {}).get("results") or []
    x_ids, m_ids = [m[0] for m in bcc2], [m[0] for m in mam]
    live = [b1.get("id"), ba1.get("id"), bid]
    x_txt, m_txt = [m[2] for m in bcc2], [m[1] for m in mam]
    ok = bool(x_ids) and x_ids == m_ids and x_ids == live and x_txt == m_txt
    out(ok, "history-ids", "XCCOS bccontext on alice's second join: %s; bob's MAM query: %s; the live ids in posting "
        "order: %s; texts equal: %s" % (x_ids, m_ids, live, x_txt == m_txt))

    # (e) leaves
    bl = al.get("bob_leave") or {}
    out(bool(bl.get("roster_dropped")) and bool(bl.get("ntc_part")), "leave-seen-by-sipe",
        "bob sent unavailable presence; SIPE got ntc:part for %s: %s, roster now %s"
        % (a.bob_uri, bool(bl.get("ntc_part")), bl.get("roster")))
    gone, out_ = bo.get("alice_leave"), bo.get("alice_signout")
    out(bool(gone), "leave-seen-by-xmpp", "alice left with SIPE's cmd:part; bob got %s" % (gone or "no unavailable presence"))
    out(bool(out_), "signout-seen-by-xmpp", "alice signed out (SIPE's BYE, no cmd:part); bob got %s"
        % (out_ or "no unavailable presence"))

    print("\n".join(lines))
    sys.exit(1 if any(l.startswith("FAIL ") for l in lines) else 0)


if __name__ == "__main__":
    main()
