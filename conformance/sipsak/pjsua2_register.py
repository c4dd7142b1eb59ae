#!/usr/bin/env python3
"""REGISTER once over TLS with SIP Digest, using PJSIP's pjsua2 (a real third-party UA).

Used by conformance/sipsak/run.sh.  Prints one line

    RESULT register=<code> <reason> [unregister=<code> <reason>] auth=<algorithm or none>

and exits 0 when the REGISTER got a final response at all (the caller judges the code),
2 on a local error (no pjsua2, TLS transport missing, no final response in time).

The full SIP trace (pjsua "msgLogging") goes to --log.
"""
import argparse
import hashlib
import re
import sys
import time

try:
    import pjsua2 as pj
except ImportError as e:  # pragma: no cover - reported by run.sh
    print("RESULT error=no-pjsua2 %s" % e)
    sys.exit(2)

# "any": a plain password, pjsip answers the first challenge it supports (perch lists
# SHA-256 first). "md5": an MD5 HA1, so pjsip must answer the MD5 challenge. (An SHA-256 HA1
# is not offered: PJSIP 2.15.1 does not match it to the SHA-256 challenge and falls back to
# the MD5 one with the wrong hash.)
ALGOS = {
    "any": pj.PJSIP_AUTH_ALGORITHM_NOT_SET,
    "md5": pj.PJSIP_AUTH_ALGORITHM_MD5,
}


class Acc(pj.Account):
    def __init__(self):
        pj.Account.__init__(self)
        self.states = []  # (code, reason, expiration)

    def onRegState(self, prm):
        self.states.append((int(prm.code), str(prm.reason), int(prm.expiration)))


def pump(ep, until, timeout):
    end = time.time() + timeout
    while time.time() < end:
        ep.libHandleEvents(50)
        if until():
            return True
    return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True, help="host:port of the TLS listener")
    p.add_argument("--domain", required=True)
    p.add_argument("--user", required=True, help="user part, also the Digest username")
    p.add_argument("--password", required=True)
    p.add_argument("--algorithm", choices=sorted(ALGOS), default="any",
                   help="md5: give pjsip an MD5 HA1 instead of the password, so it answers the MD5 challenge")
    p.add_argument("--ca", help="PEM to verify the server certificate with (default: no verification)")
    p.add_argument("--expires", type=int, default=300)
    p.add_argument("--unregister", action="store_true", help="after a 200, also send REGISTER Expires: 0")
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--log", required=True)
    a = p.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "pjsua2 conformance (pjsip %s)" % ep.libVersion().full
    cfg.logConfig.level = 5
    cfg.logConfig.consoleLevel = 0
    cfg.logConfig.msgLogging = True
    cfg.logConfig.filename = a.log
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()

    tcfg = pj.TransportConfig()
    tcfg.port = 0
    if a.ca:
        tcfg.tlsConfig.CaListFile = a.ca
        tcfg.tlsConfig.verifyServer = True
    else:
        tcfg.tlsConfig.verifyServer = False
    try:
        ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tcfg)
    except pj.Error as e:
        print("RESULT error=no-tls-transport %s" % e.info())
        ep.libDestroy()
        return 2
    ep.libStart()

    acfg = pj.AccountConfig()
    acfg.idUri = "sip:%s@%s" % (a.user, a.domain)
    acfg.regConfig.registrarUri = "sip:%s;transport=tls" % a.domain
    acfg.regConfig.timeoutSec = a.expires
    acfg.regConfig.retryIntervalSec = 0          # one attempt, no automatic retry
    acfg.regConfig.dropCallsOnFail = False
    acfg.sipConfig.proxies.append("sip:%s;transport=tls;lr" % a.server)
    acfg.natConfig.contactRewriteUse = 0         # keep the flow deterministic: no re-REGISTER
    acfg.natConfig.viaRewriteUse = 0
    acfg.natConfig.sipOutboundUse = 0
    if a.algorithm == "any":
        # plain password: pjsip answers the first challenge whose algorithm it supports
        cred = pj.AuthCredInfo("digest", "*", a.user, pj.PJSIP_CRED_DATA_PLAIN_PASSWD, a.password)
    else:
        # a precomputed HA1 is tied to one algorithm, so pjsip must pick that challenge
        ha1 = hashlib.md5(("%s:%s:%s" % (a.user, a.domain, a.password)).encode()).hexdigest()
        cred = pj.AuthCredInfo("digest", a.domain, a.user, pj.PJSIP_CRED_DATA_DIGEST, ha1)
        cred.algoType = ALGOS[a.algorithm]
    acfg.sipConfig.authCreds.append(cred)

    acc = Acc()
    acc.create(acfg)
    ok = pump(ep, lambda: any(c >= 200 for c, _r, _e in acc.states), a.timeout)
    out = []
    rc = 0
    if not ok:
        out.append("register=none no-final-response-within-%ds" % a.timeout)
        rc = 2
    else:
        code, reason, _exp = [s for s in acc.states if s[0] >= 200][0]
        out.append("register=%d %s" % (code, reason.replace(" ", "_")))
        if code == 200 and a.unregister:
            n = len(acc.states)
            acc.setRegistration(False)
            if pump(ep, lambda: len(acc.states) > n and acc.states[-1][0] >= 200, a.timeout):
                c2, r2, _ = acc.states[-1]
                out.append("unregister=%d %s" % (c2, r2.replace(" ", "_")))
            else:
                out.append("unregister=none")
    acc.shutdown()
    pump(ep, lambda: False, 0.5)
    try:
        ep.libDestroy()
    except pj.Error:
        pass
    with open(a.log, "r", errors="replace") as f:
        log = f.read()
    algos = re.findall(r"^Authorization: Digest .*?algorithm=\"?([A-Za-z0-9-]+)", log, re.M)
    out.append("auth=%s" % (",".join(sorted(set(algos))) or "none"))
    print("RESULT " + " ".join(out), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
