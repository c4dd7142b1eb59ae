#!/usr/bin/python3
"""alice on Pidgin-SIPE, driven step by step through shared/tools/sipe/harness.py.

Run with Debian's /usr/bin/python3 (python3-dbus). The harness is imported, not changed: its
Harness and Client classes start finch on a private D-Bus and tmux socket, and its step
functions (s_start, s_connect, s_xccos, s_join, s_history, s_post, s_echo, s_part,
s_disconnect) do what its `basic` scenario does, but here one at a time, on cue from bob's
slixmpp script (cross/xmpp_bob.py). The two scripts meet through files in --cues.

What alice observed (the harness's step lines, the ids SIPE's debug log shows in every
XCCOS envelope perch sent it, its roster) goes to --json; cross/check.py judges it.
"""
import argparse
import json
import os
import re
import signal
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cues import Aborted, Cues  # noqa: E402

NS_XCCOS = "urn:parlano:xml:ns:xccos"


def q(tag):
    return "{%s}%s" % (NS_XCCOS, tag)


def envelopes(log_text):
    """Every XCCOS envelope in SIPE's debug log, in order, once per envid and direction."""
    out, seen = [], set()
    for m in re.finditer(r"<xccos\b.*?</xccos>", log_text):
        try:
            el = ET.fromstring(m.group(0))
        except ET.ParseError:
            continue
        key = (el.get("envid"), ET.tostring(el)[:200])
        if key in seen:
            continue
        seen.add(key)
        out.append(el)
    return out


def grpchats(log_text):
    """(msgid, author, text) of every grpchat perch sent (SIPE's own carry no msgid)."""
    out = []
    for env in envelopes(log_text):
        for g in env.findall(q("grpchat")):
            if g.get("msgid"):
                c = g.find(q("chat"))
                out.append((g.get("msgid"), g.get("author"), (c.text or "") if c is not None else ""))
    return out


def bccontext(log_text):
    """The first rpl:bccontext in log_text: its code and [(msgid, author, text)] in order."""
    for env in envelopes(log_text):
        for r in env.findall(q("rpl")):
            if r.get("id") != "rpl:bccontext":
                continue
            resp = r.find(q("resp"))
            msgs = []
            for m in r.iter(q("msg")):
                c = m.find(q("chat"))
                msgs.append((m.get("msgid"), m.get("author"), (c.text or "") if c is not None else ""))
            return (resp.get("code") if resp is not None else None), msgs
    return None, []


def notices(log_text, ntc_id, uri):
    """Whether an ntc (ntc:join / ntc:part) naming uri is in log_text."""
    for env in envelopes(log_text):
        for n in env.findall(q("ntc")):
            if n.get("id") == ntc_id and any(u.get("uri") == uri for u in n.iter(q("uib"))):
                return True
    return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--harness-dir", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--transport", choices=["tcp", "tls"], required=True)
    p.add_argument("--tls-peer-cert")
    p.add_argument("--user", required=True, help="alice@example.test:PASSWORD")
    p.add_argument("--peer", required=True, help="the XMPP user's SIP URI, sip:bob@example.test")
    p.add_argument("--room", required=True, help="the room's ma-chan:// URI")
    p.add_argument("--workdir", required=True)
    p.add_argument("--cues", required=True)
    p.add_argument("--json", required=True)
    a = p.parse_args()

    sys.path.insert(0, a.harness_dir)
    import harness  # noqa: E402  (shared/tools/sipe/harness.py, used as it is)

    hargs = argparse.Namespace(
        server=a.server, transport=a.transport, auth="ntlm", domain=a.user.split("@")[1].split(":")[0],
        user=[a.user], groupchat_user=None, tls_peer_cert=a.tls_peer_cert, scenario="basic",
        room=a.room, room_name=None, message=None, expect_rooms=None, expect_not_listed=None,
        expect_join_denied=None, expect_history=None, hold=None, leave_by_disconnect=False,
        timeout=15, connect_timeout=30, workdir=a.workdir, no_libxml2_shim=False)
    h = harness.Harness(hargs)
    name, _, pw = a.user.partition(":")
    c = harness.Client(h, 0, name, pw)
    h.clients.append(c)
    cues = Cues(a.cues, "alice", "bob")
    obs = {"steps": [], "error": None}

    def on_signal(signum, _frame):
        h.cleanup()
        sys.exit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    def step(label, fn, needs=()):
        if not h.step(label, fn, needs=needs):
            raise Aborted("harness step %s failed" % label)

    def since(mark):
        return c.log.text(mark)

    try:
        h.ensure_shim()
        h.start_bus()
        u = c.user
        step("start[%s]" % u, h.s_start(c))
        step("connect[%s]" % u, h.s_connect(c))
        step("xccos-session[%s]" % u, h.s_xccos(c))

        bob_ready = cues.wait("bob-ready")
        # 1. alice joins after bob's first post: the join history (SIPE's cmd:bccontext) must hold it.
        step("join[%s]" % u, h.s_join(c))
        step("history[%s]" % u, h.s_history(c))
        code, msgs = bccontext(since(c.join_mark))
        obs["bcc1"] = {"code": code, "msgs": msgs}
        obs["bcc1_shown"] = [(s, t) for s, t, _f, _ts in c.history]
        harness.wait_until(lambda: a.peer in c.roster(), 5)
        obs["roster_at_join"] = c.roster()
        cues.put("alice-joined")

        # 2. alice posts once bob has seen her join; the echo's msgid is read from SIPE's log.
        cues.wait("bob-saw-alice")
        mark = c.log.size()
        step("post", h.s_post(c))
        step("echo[%s]" % u, h.s_echo(c))
        text = h.text
        hit = harness.wait_until(lambda: [g for g in grpchats(since(mark)) if g[2] == text], 5)
        obs["a1"] = {"text": text, "log": hit or []}
        cues.put("alice-posted", {"text": text})

        # 3. bob's post reaches alice.
        b2 = cues.wait("bob-posted")
        mark = c.log.size()  # bob leaves only after alice-got-b2, so his ntc:part comes after this

        def shown():
            return [(s, t) for s, t, f, _ts in c.messages() if t == b2["text"] and f & harness.MSG_RECV]
        got = harness.wait_until(shown, 15)
        hit = harness.wait_until(lambda: [g for g in grpchats(c.log.text(0)) if g[2] == b2["text"]], 3)
        obs["b2"] = {"text": b2["text"], "shown": got or [], "log": hit or []}
        cues.put("alice-got-b2")

        # 4. bob leaves: alice's roster drops him (ntc:part).
        cues.wait("bob-left")
        gone = harness.wait_until(lambda: a.peer not in c.roster(), 15)
        obs["bob_leave"] = {"roster_dropped": bool(gone), "roster": c.roster(),
                            "ntc_part": notices(since(mark), "ntc:part", a.peer)}
        mark = c.log.size()
        cues.put("alice-saw-bob-leave")

        # 5. bob comes back: alice's roster adds him (ntc:join).
        cues.wait("bob-rejoined")
        back = harness.wait_until(lambda: a.peer in c.roster(), 15)
        obs["bob_join"] = {"roster_added": bool(back), "roster": c.roster(),
                           "ntc_join": harness.wait_until(lambda: notices(since(mark), "ntc:join", a.peer), 3) or False}
        cues.put("alice-saw-bob-join")

        # 6. once bob has his MAM answer, alice parts (bob must see it) and joins again, so
        # that SIPE fetches the room's history a second time, now with every post in it.
        cues.wait("bob-mam")
        step("part[%s]" % u, h.s_part(c, []))
        cues.put("alice-left")
        cues.wait("bob-saw-alice-leave")
        step("rejoin[%s]" % u, h.s_join(c))
        step("history-again[%s]" % u, h.s_history(c))
        code, msgs = bccontext(since(c.join_mark))
        obs["bcc2"] = {"code": code, "msgs": msgs}
        cues.put("alice-rejoined")
        cues.wait("bob-saw-alice-rejoin")
        step("disconnect[%s]" % u, h.s_disconnect(c))
        cues.put("alice-done")
    except Aborted as e:
        obs["error"] = str(e)
        cues.abort(str(e))
        print("alice: %s" % e, file=sys.stderr, flush=True)
    except Exception as e:  # a crash is recorded, and the other side told
        obs["error"] = "crashed: %r" % e
        cues.abort(obs["error"])
        raise
    finally:
        obs["steps"] = [{"name": n, "ok": ok} for ok, n in h.results]
        with open(a.json, "w") as f:
            json.dump(obs, f, indent=1)
        h.cleanup()


if __name__ == "__main__":
    main()
