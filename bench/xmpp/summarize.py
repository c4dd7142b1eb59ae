#!/usr/bin/env python3
"""Summarises one tsung run of bench/xmpp/run.sh (one JSON line per run), or prints the
table of every run (--table FILE).

Sources: tsung-fullstats.log (backend="fullstats": every sample, for means and
percentiles) and tsung.log (counters: users, finished sessions, connected, errors, bytes).
Server CPU and RSS come from run.sh (/proc/PID of the server)."""
import argparse, json, math, os, re, sys

SAMPLE = re.compile(r"\{sample,\s*'?([A-Za-z0-9_:]+)'?,\s*(\[[^\]]*\]|-?[0-9.]+(?:e[+-]?[0-9]+)?)\s*\}")
NUM = re.compile(r"-?[0-9.]+(?:e[+-]?[0-9]+)?")
STATS = re.compile(r"^stats: (\S+) (.*)$")


def pct(vals, p):
    if not vals:
        return None
    vals = sorted(vals)
    k = max(0, min(len(vals) - 1, math.ceil(p / 100 * len(vals)) - 1))
    return vals[k]


def summarize(a):
    samples = {}
    with open(os.path.join(a.logdir, "tsung-fullstats.log"), errors="replace") as f:
        text = f.read()
    # {sample,Name,Value} or {sample,Name,[V1,V2,...]} (lists span lines)
    for name, v in SAMPLE.findall(text):
        samples.setdefault(name, []).extend(float(x) for x in NUM.findall(v))
    counters = {}
    with open(os.path.join(a.logdir, "tsung.log"), errors="replace") as f:
        for line in f:
            m = STATS.match(line.strip())
            if not m:
                continue
            name, rest = m.group(1), m.group(2).split()
            # counters: "name interval total"; samples: "name count mean stddev max min meanfb countfb"
            if len(rest) == 2:
                counters[name] = float(rest[1])
            elif len(rest) >= 6:
                c = counters.setdefault("samples_" + name, 0.0)
                counters["samples_" + name] = c + float(rest[0])
    steady = None
    if a.cpu_log and a.steady_to - a.steady_from >= 10:
        pts = []
        for line in open(a.cpu_log):
            t, _, c = line.partition(" ")
            try:
                pts.append((float(t) - a.t0, float(c)))
            except ValueError:
                pass
        def at(x):  # ticks at x s after the start, linear between samples
            for (ta, ca), (tb, cb) in zip(pts, pts[1:]):
                if ta <= x <= tb:
                    return ca + (cb - ca) * (x - ta) / max(1e-9, tb - ta)
            return None
        c0, c1 = at(a.steady_from), at(a.steady_to)
        if c0 is not None and c1 is not None:
            secs = a.steady_to - a.steady_from
            cpu = (c1 - c0) / a.clk_tck
            steady = {"from_s": a.steady_from, "to_s": a.steady_to, "cpu_s": round(cpu, 3),
                      "cpu_pct": round(100 * cpu / secs, 1),
                      "deliveries": a.posters * secs * a.users}
    out = {
        "steady": steady,
        "server": a.server, "run": a.run, "users": a.users, "posters": a.posters,
        "duration": a.duration, "load1": a.load, "cpu_s": round(a.cpu_s, 2),
        "wall_s": round(a.wall_s, 1), "rss_kib": a.rss_kib, "hwm_kib": a.hwm_kib,
        "counters": counters, "samples": {},
    }
    for name, vals in sorted(samples.items()):
        out["samples"][name] = {
            "n": len(vals), "mean": sum(vals) / len(vals), "p50": pct(vals, 50),
            "p99": pct(vals, 99), "max": max(vals),
        }
    with open(a.json, "a") as f:
        f.write(json.dumps(out) + "\n")
    print(json.dumps({k: out[k] for k in ("server", "run", "cpu_s", "hwm_kib")}), file=sys.stderr)


def fmt(x, nd=1):
    return "—" if x is None else f"{x:,.{nd}f}"


def table(path):
    runs = [json.loads(l) for l in open(path) if l.strip()]
    if not runs:
        print("no runs")
        return
    r0 = runs[0]
    print(f"{r0['users']} users in one room, {r0['posters']} posting 1/s for {r0['duration']} s\n")
    cols = [f"{r['server']} #{r['run']}" for r in runs]
    print("| | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(runs))

    def row(label, f):
        print(f"| {label} | " + " | ".join(f(r) for r in runs) + " |")

    c = lambda r, k: r["counters"].get(k)
    s = lambda r, k: r["samples"].get(k, {})
    row("load (1 min) before", lambda r: r["load1"])
    row("sessions started", lambda r: fmt(c(r, "users_count"), 0))
    row("connections established (TCP)", lambda r: fmt(s(r, "connect").get("n"), 0))
    row("STARTTLS upgrades", lambda r: fmt(s(r, "xmpp_starttls").get("n"), 0))
    row("signed in (auth transaction done)", lambda r: fmt(s(r, "tr_auth").get("n"), 0))
    row("joined (join transaction done)", lambda r: fmt(s(r, "tr_join").get("n"), 0))
    row("sessions finished", lambda r: fmt(c(r, "finish_users_count"), 0))
    row("posts sent", lambda r: fmt(s(r, "tr_post").get("n"), 0))
    row("expected deliveries (posts × occupants)", lambda r: fmt(
        (s(r, "tr_post").get("n") or 0) * r["users"], 0))
    row("reads with a stamped post (≤ deliveries)", lambda r: fmt(s(r, "xmpp_msg_latency").get("n"), 0))
    row("bytes received by tsung, MB", lambda r: fmt((c(r, "size_rcv") or 0) / 1e6, 1))
    row("bytes sent by tsung, MB", lambda r: fmt((c(r, "size_sent") or 0) / 1e6, 2))
    errs = lambda r: ", ".join(f"{k[6:]} {int(v)}" for k, v in sorted(r["counters"].items())
                               if k.startswith("error") and v) or "none"
    row("tsung errors", errs)
    for label, k in (("TCP connect", "connect"), ("STARTTLS", "xmpp_starttls"),
                     ("auth (SASL PLAIN, restart, bind, session)", "tr_auth"),
                     ("join (presence → first answer)", "tr_join"),
                     ("post → receive (stamped body)", "xmpp_msg_latency")):
        row(f"{label}, ms mean / p99", lambda r, k=k: (
            f"{fmt(s(r, k).get('mean'), 2)} / {fmt(s(r, k).get('p99'), 2)}" if s(r, k) else "—"))
    row("server CPU during the run, s", lambda r: fmt(r["cpu_s"], 2))
    row("server CPU per 1,000 deliveries (whole run), ms", lambda r: fmt(
        1e6 * r["cpu_s"] / max(1, (s(r, "tr_post").get("n") or 0) * r["users"]), 1))
    st = lambda r: r.get("steady") or {}
    row("steady window (everyone in, all posting), s after start", lambda r: (
        f"{st(r)['from_s']:.0f}–{st(r)['to_s']:.0f}" if st(r) else "—"))
    row("server CPU in the steady window, % of one core", lambda r: fmt(st(r).get("cpu_pct")))
    row("server CPU per 1,000 deliveries (steady), ms", lambda r: fmt(
        1e3 * st(r)["cpu_s"] / st(r)["deliveries"] * 1000, 1) if st(r) else "—")
    row("server RSS at end / peak, MiB", lambda r: f"{fmt(r['rss_kib'] / 1024)} / {fmt(r['hwm_kib'] / 1024)}")
    row("wall time of the tsung run, s", lambda r: fmt(r["wall_s"]))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--table")
    p.add_argument("--server"); p.add_argument("--run", type=int); p.add_argument("--logdir")
    p.add_argument("--cpu-s", type=float); p.add_argument("--wall-s", type=float)
    p.add_argument("--rss-kib", type=float); p.add_argument("--hwm-kib", type=float)
    p.add_argument("--load"); p.add_argument("--users", type=int); p.add_argument("--posters", type=int)
    p.add_argument("--duration", type=int); p.add_argument("--json")
    p.add_argument("--cpu-log"); p.add_argument("--t0", type=float); p.add_argument("--clk-tck", type=float)
    p.add_argument("--steady-from", type=float); p.add_argument("--steady-to", type=float)
    a = p.parse_args()
    table(a.table) if a.table else summarize(a)
