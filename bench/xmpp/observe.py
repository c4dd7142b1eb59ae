#!/usr/bin/env python3
"""Exact delivery counter for bench/xmpp/ramp.sh: K XMPP sessions (standard library only:
socket, ssl, selectors) that sign in like tsung's users (STARTTLS, SASL PLAIN, bind), join
one MUC room each without history, then count every groupchat message that carries a
tsung stamp (@@@node,Mega;Secs;Micro@@@) posted after they joined, and time each one
(receive time minus the stamp: tsung and this process read the same wall clock).

tsung takes one latency sample per socket read, so it undercounts when several posts
arrive in one read; this counts every stamp in every read.

  observe.py --port P --domain D --muc M --password PW --session obs1:room1 ... --out F.json

It prints "READY <epoch s>" on stdout once every session has joined, counts until SIGTERM
(or SIGINT), then writes F.json: per room the stamps seen (unique) and per session the
count, with latency percentiles over every delivery to every session."""
import argparse, base64, json, math, re, selectors, signal, socket, ssl, sys, time
from concurrent.futures import ThreadPoolExecutor

STAMP = re.compile(rb"@@@[0-9]+,([0-9]+);([0-9]+);([0-9]+)@@@")
# a message's sender (room@service/nick) and the stamp of its body, within one <message>
SENT = re.compile(rb"<message\s[^>]*?\bfrom=['\"]([^'\"]*)['\"][^>]*>(?:(?!</message>).)*?"
                  rb"(@@@[0-9]+,([0-9]+);([0-9]+);([0-9]+)@@@)", re.S)
NS_STREAM = "http://etherx.jabber.org/streams"


def header(domain):
    return (f"<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' "
            f"xmlns:stream='{NS_STREAM}' version='1.0'>").encode()


def read_until(sock, buf, *needles, timeout=60):
    """Reads into buf (a bytearray) until one of needles is in it; returns the needle."""
    end = time.monotonic() + timeout
    while True:
        for n in needles:
            if n in buf:
                return n
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"waiting for {needles!r}; have {bytes(buf[-300:])!r}")
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed while waiting for {needles!r}; have {bytes(buf[-300:])!r}")
        buf += data


def setup(a, user, room, ctx):
    s = socket.create_connection(("127.0.0.1", a.port), timeout=60)
    buf = bytearray()
    s.sendall(header(a.domain))
    read_until(s, buf, b"</stream:features>")
    buf.clear()
    s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    read_until(s, buf, b"<proceed")
    buf.clear()
    s = ctx.wrap_socket(s, server_hostname=a.domain)
    s.sendall(header(a.domain))
    read_until(s, buf, b"</stream:features>")
    buf.clear()
    cred = base64.b64encode(f"\0{user}\0{a.password}".encode()).decode()
    s.sendall(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>".encode())
    if read_until(s, buf, b"<success", b"<failure") != b"<success":
        raise RuntimeError(f"{user}: SASL failure: {bytes(buf)!r}")
    buf.clear()
    s.sendall(header(a.domain))
    read_until(s, buf, b"</stream:features>")
    buf.clear()
    s.sendall(b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              b"<resource>observer</resource></bind></iq>")
    read_until(s, buf, b"</iq>")
    if b"result" not in buf:
        raise RuntimeError(f"{user}: bind: {bytes(buf)!r}")
    buf.clear()
    jid = f"{room}@{a.muc}/{user}"
    s.sendall(f"<presence to='{jid}'><x xmlns='http://jabber.org/protocol/muc'>"
              f"<history maxstanzas='0'/></x></presence>".encode())
    # the join is done when the room sends our own presence (status 110)
    read_until(s, buf, b"code='110'", b'code="110"', b"type='error'", b'type="error"')
    if b"type='error'" in buf or b'type="error"' in buf:
        raise RuntimeError(f"{user}: join {jid}: {bytes(buf)!r}")
    s.setblocking(False)
    return s


def pct(vals, p):
    if not vals:
        return None
    k = max(0, min(len(vals) - 1, math.ceil(p / 100 * len(vals)) - 1))
    return vals[k]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--muc", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--session", action="append", default=[], help="user:room, every stamp timed")
    p.add_argument("--bulk", action="append", default=[],
                   help="user:room, a receiver that only counts stamps (and times the last of each read)")
    p.add_argument("--out", required=True)
    p.add_argument("--parallel", type=int, default=8)
    a = p.parse_args()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    pairs = [tuple(x.split(":", 1)) for x in a.session + a.bulk]
    nexact = len(a.session)
    t_setup = time.time()
    with ThreadPoolExecutor(a.parallel) as ex:
        socks = list(ex.map(lambda ur: setup(a, ur[0], ur[1], ctx), pairs))
    t_ready = time.time()
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"READY {t_ready:.6f} setup {t_ready - t_setup:.2f}s", flush=True)

    sel = selectors.DefaultSelector()
    state = []
    for i, s in enumerate(socks):
        state.append({"user": pairs[i][0], "room": pairs[i][1], "buf": b"", "n": 0, "old": 0,
                      "bytes": 0, "closed": False, "bulk": i >= nexact})
        sel.register(s, selectors.EVENT_READ, i)
    lat = []            # ms, every delivery to every exact session
    bulk_lat = []       # ms, the last stamp of each read of a bulk session
    stamps = {}         # room -> set of stamps seen
    posters = {}        # sender -> {stamp: post time}
    first = last = None
    smin = smax = None  # first and last post time among the stamps counted
    while not stop:
        for key, _ in sel.select(timeout=0.2):
            i, s, st = key.data, key.fileobj, state[key.data]
            while True:
                try:
                    data = s.recv(262144)
                except (ssl.SSLWantReadError, BlockingIOError):
                    break
                except (ssl.SSLError, OSError):
                    data = b""
                if not data:
                    st["closed"] = True
                    sel.unregister(s)
                    break
                now = time.time()
                st["bytes"] += len(data)
                if st["bulk"]:
                    # count "@@@" (two per stamp; the last two bytes of the previous read
                    # are kept so that a marker cut by a read is counted once)
                    both = st["buf"] + data
                    st["at"] = st.get("at", 0) + both.count(b"@@@")
                    st["buf"] = both[-2:] if not both.endswith(b"@@@") else b""
                    m = None
                    for m in STAMP.finditer(data[-2000:]):
                        pass
                    if m:
                        ts = int(m.group(1)) * 1e6 + int(m.group(2)) + int(m.group(3)) / 1e6
                        if ts >= t_ready - 1:
                            bulk_lat.append((now - ts) * 1000)
                    continue
                buf = st["buf"] + data
                # a stanza may be cut by a read: the text after the last complete
                # </message> waits for the next read
                end = buf.rfind(b"</message>")
                if end < 0:
                    st["buf"] = buf[-65536:]
                    continue
                keep, buf = buf[end + 10:], buf[:end + 10]
                for m in SENT.finditer(buf):
                    ts = int(m.group(3)) * 1e6 + int(m.group(4)) + int(m.group(5)) / 1e6
                    if ts < t_ready - 1:
                        st["old"] += 1
                        continue
                    st["n"] += 1
                    posters.setdefault(m.group(1), {})[m.group(2)] = ts
                    smin = ts if smin is None or ts < smin else smin
                    smax = ts if smax is None or ts > smax else smax
                    lat.append((now - ts) * 1000)
                    stamps.setdefault(st["room"], set()).add(m.group(2))
                    first = now if first is None else first
                    last = now
                st["buf"] = keep
    lat.sort()
    bulk_lat.sort()
    for st in state:
        if st["bulk"]:
            st["n"] = st.pop("at", 0) // 2
    bulk = [st for st in state if st["bulk"]]
    # the rate the posts went out at: per sender (unique posts - 1) / (last - first post)
    rate = 0.0
    for p in posters.values():
        if len(p) >= 2:
            t = sorted(p.values())
            if t[-1] > t[0]:
                rate += (len(t) - 1) / (t[-1] - t[0])
    out = {
        "senders": len(posters), "unique_posts": sum(len(p) for p in posters.values()),
        "achieved_posts_s": round(rate, 2),
        "bulk_sessions": len(bulk), "bulk_deliveries": sum(st["n"] for st in bulk),
        "bulk_min": min((st["n"] for st in bulk), default=None),
        "bulk_lat_ms": {"n": len(bulk_lat), "p50": pct(bulk_lat, 50), "p99": pct(bulk_lat, 99),
                        "max": bulk_lat[-1] if bulk_lat else None},
        "t_ready": t_ready, "setup_s": round(t_ready - t_setup, 2),
        "first_rcv": first, "last_rcv": last, "stamp_min": smin, "stamp_max": smax,
        "cpu_s": round(time.process_time(), 3),
        "sessions": [{k: v for k, v in st.items() if k != "buf"} for st in state],
        "rooms": {r: len(v) for r, v in stamps.items()},
        "deliveries": len(lat),
        "lat_ms": {"n": len(lat), "p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                   "max": lat[-1] if lat else None,
                   "mean": sum(lat) / len(lat) if lat else None},
    }
    with open(a.out, "w") as f:
        json.dump(out, f)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
