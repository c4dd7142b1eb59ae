#!/usr/bin/env python3
"""The differences table: each MUC/MAM and resumption step against Prosody and against perch.

Reads the JSON that muc_scenarios.py and resume_check.py wrote for each server (--prosody and
--perch may each be given more than once; the files' steps are read in that order). A step
differs when its verdict or what was observed differs. A difference is accounted for when
conformance/xmpp/INTENDED.md names the step (a line `Steps: \\`a\\`, \\`b\\``) as an intended
Lync rule, or when Prosody skipped a step that perch passes (perch does more). Any other
difference is printed as a FAIL line, and so is a step that failed on perch.
"""
import argparse
import json
import os
import re


def load(paths):
    """The steps of every file that exists, merged; None when none does."""
    out = None
    for path in paths or []:
        if path and os.path.exists(path):
            with open(path) as f:
                d = json.load(f)
            out = out or {"order": [], "steps": {}}
            out["order"] += [s for s in d.get("order", []) if s not in out["steps"]]
            out["steps"].update(d.get("steps", {}))
    return out


def intended_steps(path):
    """step -> the INTENDED.md section (its heading) that explains it."""
    out, heading = {}, None
    with open(path) as f:
        for line in f:
            m = re.match(r"^##\s+(.*)", line)
            if m:
                heading = m.group(1).strip()
            m = re.match(r"^Steps?:\s*(.*)", line)
            if m and heading:
                for step in re.findall(r"`([a-z0-9-]+)`", m.group(1)):
                    out[step] = heading
    return out


def cell(r):
    return "not run" if r is None else "%s (%s)" % (r["verdict"], r["observed"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--prosody", action="append")
    p.add_argument("--perch", action="append")
    p.add_argument("--perch-ran", default="0")
    p.add_argument("--intended", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    pro, per = load(a.prosody), load(a.perch)
    why = intended_steps(a.intended)
    order = []
    for d in (pro, per):
        for s in (d or {}).get("order", []):
            if s not in order:
                order.append(s)
    rows, unexplained, same, intended = [], [], 0, 0
    for s in order:
        rp = (pro or {}).get("steps", {}).get(s)
        rq = (per or {}).get("steps", {}).get(s)
        if per is None:
            note = "perch not run"
        elif rp is None or rq is None:
            note = "ran on one server only"
            if rq is None or rq["verdict"] == "FAIL":
                unexplained.append(s)
        elif (rp["verdict"], rp["observed"]) == (rq["verdict"], rq["observed"]):
            note, same = "same", same + 1
        elif rq["verdict"] == "FAIL":
            note = "perch FAILS"
            unexplained.append(s)
        elif s in why:
            note, intended = "intended Lync rule: INTENDED.md, %s" % why[s], intended + 1
        elif rp["verdict"] == "SKIP" and rq["verdict"] == "PASS":
            note = "perch does more (Prosody: SKIP)"
        elif rp["observed"] == rq["observed"]:
            note, same = "same", same + 1
        else:
            note = "UNEXPLAINED difference: fix perch or write the rule in INTENDED.md"
            unexplained.append(s)
        rows.append((s, cell(rp), cell(rq), note))
    w = [max(len(r[i]) for r in rows + [("step", "Prosody", "perch", "")]) for i in range(3)]
    with open(a.out, "w") as f:
        f.write("# XMPP MUC/MAM and resumption steps: Prosody (the oracle, profile xep0045) and perch (profile lync)\n")
        f.write("# verdict (what was observed); a difference is fixed or written in conformance/xmpp/INTENDED.md\n")
        f.write("%-*s  %-*s  %-*s  %s\n" % (w[0], "step", w[1], "Prosody", w[2], "perch", "note"))
        for r in rows:
            f.write("%-*s  %-*s  %-*s  %s\n" % (w[0], r[0], w[1], r[1], w[2], r[2], r[3]))
    if per is None:
        print("INFO differences: perch not run (%s); %d steps listed for Prosody only"
              % ("no XMPP listener" if a.perch_ran != "1" else "no results", len(rows)))
    else:
        print("INFO differences: %d steps, %d the same, %d intended Lync rules, %d unexplained"
              % (len(rows), same, intended, len(unexplained)))
    for s in unexplained:
        print("FAIL difference %s: %s" % (s, [r[3] for r in rows if r[0] == s][0]))


if __name__ == "__main__":
    main()
