#!/usr/bin/env python3
"""bench/xmpp/ramp.sh's summaries.

  ramp_summary.py step ...   one step: a JSON line appended to --json, the verdict on stdout
  ramp_summary.py table F    the per-step tables and the maxima of every ramp in F

A step is kept up ("ok") when every tsung user signed in and joined, the observers got
>= 99 % of the deliveries due to them by the end of the settle time, and their p99
post -> receive is under 1 s. It is generator-limited ("gen") when, kept up or not, the
posts went out at less than 90 % of the nominal rate (from the stamps' span); else "fail"."""
import argparse, json, math, os, re, sys

SAMPLE = re.compile(r"\{sample,\s*'?([A-Za-z0-9_:]+)'?,\s*(\[[^\]]*\]|-?[0-9.]+(?:e[+-]?[0-9]+)?)\s*\}")
NUM = re.compile(r"-?[0-9.]+(?:e[+-]?[0-9]+)?")
STATS = re.compile(r"^stats: (\S+) (.*)$")
KEEP_RATIO, KEEP_P99_MS, GEN_SHORT = 0.99, 1000.0, 0.90


def pct(vals, p):
    if not vals:
        return None
    vals = sorted(vals)
    return vals[max(0, min(len(vals) - 1, math.ceil(p / 100 * len(vals)) - 1))]


def tsung_logs(logdir):
    samples, counters = {}, {}
    with open(os.path.join(logdir, "tsung-fullstats.log"), errors="replace") as f:
        for name, v in SAMPLE.findall(f.read()):
            samples.setdefault(name, []).extend(float(x) for x in NUM.findall(v))
    with open(os.path.join(logdir, "tsung.log"), errors="replace") as f:
        for line in f:
            m = STATS.match(line.strip())
            if m:
                rest = m.group(2).split()
                if len(rest) == 2:      # counters: name interval total
                    counters[m.group(1)] = float(rest[1])
    return samples, counters


def window(cpu_log, t_from, t_to, clk):
    """Server CPU % of one core, CPU 0 and CPU 1 busy % between t_from and t_to (epoch s)."""
    pts = []
    for line in open(cpu_log):
        f = line.split()
        if len(f) < 6 or f[1] == "-":
            continue
        pts.append([float(x) for x in f[:6]])
    def at(t):
        for a, b in zip(pts, pts[1:]):
            if a[0] <= t <= b[0]:
                w = (t - a[0]) / max(1e-9, b[0] - a[0])
                return [x + (y - x) * w for x, y in zip(a, b)]
        return None
    a, b = at(t_from), at(t_to)
    if a is None or b is None:
        return None
    secs = t_to - t_from
    busy = lambda i: 100 * (b[i] - a[i]) / max(1e-9, (b[i] - a[i]) + (b[i + 1] - a[i + 1]))
    return {"server_pct": round(100 * (b[1] - a[1]) / clk / secs, 1),
            "cpu0_busy_pct": round(busy(2), 1), "cpu1_busy_pct": round(busy(4), 1)}


def step(a):
    samples, counters = tsung_logs(a.logdir)
    n = lambda k: len(samples.get(k, []))
    try:
        obs = json.load(open(a.observer))
    except (OSError, ValueError):
        obs = {}
    posts = n("tr_post")
    due = posts * (a.observers if a.scenario != "ingest" else 1)
    got = obs.get("deliveries", 0)
    ratio = got / due if due else 0.0
    # counting-only receivers (fanpy): each is due every post
    bulk_due = posts * (obs.get("bulk_sessions") or 0)
    bulk_got = obs.get("bulk_deliveries") or 0
    bulk_ratio = bulk_got / bulk_due if bulk_due else None
    if bulk_ratio is not None:
        ratio = min(ratio, bulk_ratio)
    span = (obs.get("stamp_max") or 0) - (obs.get("stamp_min") or 0)
    # per sender (the observers see the nick of each post): robust to late starters
    achieved = obs.get("achieved_posts_s")
    if achieved is None:
        achieved = a.posters * (a.count - 1) / span if span > 0 else None
    go = a.go / 1000
    win = window(a.cpu_log, go + 1, go + a.duration, a.clk_tck)
    lat = obs.get("lat_ms", {})
    tl = samples.get("xmpp_msg_latency", [])
    d0, d1 = a.perch_deliveries
    errors = {k[6:]: v for k, v in counters.items() if k.startswith("error") and v}
    joined = n("tr_join")
    kept = (joined == a.users and ratio >= KEEP_RATIO and lat.get("p99") is not None
            and lat["p99"] < KEEP_P99_MS)
    gen = achieved is not None and achieved < GEN_SHORT * a.rate
    verdict = "gen" if gen else ("ok" if kept else "fail")
    out = {
        "server": a.server, "version": a.version, "scenario": a.scenario, "run": a.run,
        "rate": a.rate, "users": a.users, "posters": a.posters, "occupants": a.occupants,
        "observers": a.observers, "duration": a.duration, "settle": a.settle, "load1": a.load, "others": a.others,
        "signed_in": n("tr_auth"), "joined": joined,
        "finished": counters.get("finish_users_count"), "errors": errors,
        "posts": posts, "achieved_posts_s": round(achieved, 1) if achieved else None,
        "offered_deliveries_s": a.rate * a.occupants,
        "delivered_s": round(achieved * a.occupants * min(1.0, ratio), 0) if achieved else None,
        "obs_due": due, "obs_got": got, "obs_ratio": round(ratio, 5),
        "obs_lat_ms": lat, "bulk_due": bulk_due, "bulk_got": bulk_got,
        "bulk_min": obs.get("bulk_min"), "bulk_lat_ms": obs.get("bulk_lat_ms"), "obs_cpu_s": obs.get("cpu_s"), "obs_setup_s": obs.get("setup_s"),
        "tsung_lat_ms": {"n": len(tl), "p50": pct(tl, 50), "p99": pct(tl, 99)},
        "tsung_rcv_mb": round((counters.get("size_rcv") or 0) / 1e6, 2),
        "perch_deliveries": (float(d1) - float(d0)) if d0 != "-" and d1 != "-" else None,
        "window": win, "cpu_s": round(a.cpu_s, 2), "wall_s": round(a.wall_s, 1),
        "rss_kib": a.rss_kib, "hwm_kib": a.hwm_kib, "verdict": verdict,
    }
    with open(a.json, "a") as f:
        f.write(json.dumps(out) + "\n")
    w = win or {}
    print(f"  {a.server} {a.scenario} {a.rate}/s: posts {posts}, achieved {out['achieved_posts_s']}/s, "
          f"observers {got}/{due} ({100 * ratio:.2f} %), p50/p99 {lat.get('p50')}/{lat.get('p99')} ms, "
          f"server {w.get('server_pct')} %, cpu1 {w.get('cpu1_busy_pct')} %, joined {joined}/{a.users}, "
          f"errors {errors or 'none'}", file=sys.stderr)
    print(verdict)


def f(x, nd=0):
    return "—" if x is None else f"{x:,.{nd}f}"


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    for scen in ("fanout", "fanpy", "ingest"):
        rs = [r for r in rows if r["scenario"] == scen]
        if not rs:
            continue
        r0 = rs[0]
        if scen == "fanout":
            print(f"\n### fan-out: one room of {r0['occupants']} occupants ({r0['users']} tsung users, "
                  f"{r0['posters']} posting; {r0['observers']} observers), {r0['duration']} s of posts per step\n")
        elif scen == "fanpy":
            print(f"\n### fan-out, Python receivers: one room of {r0['occupants']} occupants ({r0['users']} tsung "
                  f"posters, {r0['observers']} timing observers, the rest counting-only receivers), "
                  f"{r0['duration']} s of posts per step\n")
        else:
            print(f"\n### ingest: rooms of {r0['occupants']} occupants ({r0['users']} tsung users, all posting, "
                  f"one observer per room), {r0['duration']} s of posts per step\n")
        print("| server | run | posts/s offered | posts/s sent | deliveries/s offered | observers got | "
              "p50 / p99 ms | server CPU % | CPU 1 busy % | peak RSS MiB | load | other work (start / end) | verdict |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for r in rs:
            lat, w = r["obs_lat_ms"], r["window"] or {}
            print(f"| {r['server']} | {r['run']} | {r['rate']} | {f(r['achieved_posts_s'], 1)} | "
                  f"{f(r['offered_deliveries_s'])} | {100 * r['obs_ratio']:.2f} % | "
                  f"{f(lat.get('p50'), 1)} / {f(lat.get('p99'), 1)} | "
                  f"{f(w.get('server_pct'), 1)} | {f(w.get('cpu1_busy_pct'), 1)} | {f(r['hwm_kib'] / 1024, 1)} | "
                  f"{r['load1']} | {r.get('others') or '—'} | {r['verdict']} |")
    print("\n### highest step kept up, per ramp\n")
    print("| scenario | server | run | posts/s | deliveries/s | p99 ms there | next step |")
    print("|---|---|---:|---:|---:|---:|---|")
    ramps = {}
    for r in rows:
        ramps.setdefault((r["scenario"], r["server"], r["run"]), []).append(r)
    for (scen, server, run), rs in ramps.items():
        ok = [r for r in rs if r["verdict"] == "ok"]
        best = max(ok, key=lambda r: r["rate"]) if ok else None
        nxt = [r for r in rs if best is None or r["rate"] > best["rate"]]
        nx = f"{nxt[0]['rate']}: {nxt[0]['verdict']}" if nxt else "none run"
        print(f"| {scen} | {server} | {run} | {best['rate'] if best else '—'} | "
              f"{f(best['offered_deliveries_s']) if best else '—'} | "
              f"{f(best['obs_lat_ms'].get('p99'), 1) if best else '—'} | {nx} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table"); t.add_argument("path")
    s = sub.add_parser("step")
    for k in ("server", "version", "scenario", "logdir", "observer", "cpu-log", "load", "json", "others"):
        s.add_argument("--" + k)
    for k in ("run", "rate", "users", "posters", "occupants", "observers", "count", "duration", "settle"):
        s.add_argument("--" + k, type=int)
    for k in ("go", "clk-tck", "cpu-s", "wall-s", "rss-kib", "hwm-kib"):
        s.add_argument("--" + k, type=float)
    s.add_argument("--perch-deliveries", nargs=2)
    a = p.parse_args()
    table(a.path) if a.cmd == "table" else step(a)
