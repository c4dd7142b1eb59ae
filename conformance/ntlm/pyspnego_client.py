#!/usr/bin/env python3
"""MS-SIPAE NTLM sign-in against perch, with pyspnego doing all of the NTLM.

    python pyspnego_client.py --host 127.0.0.1 --port PORT --password PW --wrong-password WPW \
        --perch-log perch.log [--tls --ca dev-cert.pem --prefix tls-] [--quick] [--trace FILE]

Prints one line per step: `PASS name: detail`, `FAIL name: detail` or `INFO name: detail`.
The exit code is 0 when no step failed.

Who does what. Everything NTLM comes from pyspnego (https://github.com/jborean93/pyspnego,
MIT); this file only moves its bytes over SIP and builds the MS-SIPAE signature text:

* The AUTHENTICATE of the main session is made by pyspnego's own NTLM client state machine,
  `spnego.client(..., protocol="ntlm", options=NegotiateOptions.use_ntlm)` (class
  `spnego._ntlm.NTLMProxy`): `step()` once for the NEGOTIATE (never sent: connectionless NTLM
  as MS-SIPAE uses it starts at the server's CHALLENGE), then `step(CHALLENGE)`. Inside that,
  pyspnego parses the CHALLENGE (`_ntlm_raw.messages.Challenge`), takes the flags from it, and
  computes NTOWFv1/NTOWFv2 (`crypto.ntowfv1`, `crypto.ntowfv2`), the NTLMv2 response over the
  CHALLENGE's TargetInfo with its MsvAvTimestamp (`crypto.compute_response_v2`), a random
  exported session key encrypted with the key exchange key (`crypto.rc4k`), and packs the
  AUTHENTICATE (`messages.Authenticate`). `ctx.session_key` is the exported session key.
* A second sign-in (step `handshake-primitives`) composes a minimal, SIPE-shaped AUTHENTICATE
  straight from those same pyspnego primitives (`ntowfv1`, `ntowfv2`, `compute_response_v2`,
  `rc4k`, `Authenticate`), with the user in UPN form and no MIC, no Version, no extra AV pairs.
* Signatures: keys from `crypto.signkey` / `crypto.sealkey` (MS-NLMP SIGNKEY/SEALKEY; usage
  "initiate" = client-to-server, "accept" = server-to-client), the MAC from
  `_ntlm_raw.security.sign` (MAC with extended session security, RC4 of the checksum under
  KEY_EXCH). Connectionless (DATAGRAM) NTLM re-keys RC4 for every message with
  MD5(SealKey || SeqNum) (MS-NLMP 3.4.4.2); that handle is `crypto.rc4init(crypto.md5(...))`.
  The sequence number is always 100, as SIPE does.

The signature text is built here from the raw SIP headers the way Pidgin-SIPE's
sipmsg_breakdown_parse/sipmsg_breakdown_get_string do it (substring searches on the header
values), not with perch's code.
"""

import argparse
import base64
import os
import re
import secrets
import socket
import ssl
import struct
import sys
import time

import spnego
from spnego._ntlm_raw.crypto import (
    compute_response_v2,
    md5,
    ntowfv1,
    ntowfv2,
    rc4init,
    rc4k,
    sealkey,
    signkey,
)
from spnego._ntlm_raw.messages import (
    Authenticate,
    AvId,
    Challenge,
    FileTime,
    NegotiateFlags,
    TargetInfo,
)
from spnego._ntlm_raw.security import sign as ntlm_mac

REALM = "SIP Communications Service"
SEQUENCE = 100  # SIPE signs every message with NTLM sequence number 100
PROVISIONING = "vnd-microsoft-provisioning-v2"

FAILS = 0
TRACE = None


def step(verdict, name, detail):
    global FAILS
    if verdict == "FAIL":
        FAILS += 1
    print(f"{verdict} {name}: {detail}", flush=True)


def trace(direction, data):
    if TRACE is not None:
        TRACE.write(f"----- {direction} {time.strftime('%H:%M:%S')} ({len(data)} bytes)\n")
        TRACE.write(data.decode("utf-8", "replace"))
        if not data.endswith(b"\n"):
            TRACE.write("\n")
        TRACE.flush()


# ---- SIP over a stream ------------------------------------------------------------------


class Msg:
    """A parsed SIP message: start line, headers in order, body, and the raw bytes."""

    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:  # folded line
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))
        self.code = int(self.start.split()[1]) if self.start.startswith("SIP/2.0 ") else None

    def get(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def get_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def summary(self):
        return self.start


class Conn:
    def __init__(self, host, port, tls=False, ca=None):
        sock = socket.create_connection((host, port), timeout=10)
        if tls:
            ctx = ssl.create_default_context(cafile=ca)
            ctx.check_hostname = True
            sock = ctx.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.transport = "TLS" if tls else "TCP"
        self.local = sock.getsockname()
        self.buf = b""
        self.stray = []  # server-initiated requests seen while waiting for responses

    def send(self, data):
        trace("sent", data)
        self.sock.sendall(data)

    def _read_one(self, deadline):
        while True:
            while self.buf.startswith(b"\r\n"):  # keep-alive pongs
                self.buf = self.buf[2:]
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("utf-8", "replace")
                m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                total = end + 4 + (int(m.group(1)) if m else 0)
                if len(self.buf) >= total:
                    raw, self.buf = self.buf[:total], self.buf[total:]
                    trace("received", raw)
                    return Msg(raw)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def response_to(self, call_id, cseq, timeout=10.0):
        """The final response to (call_id, cseq); provisional ones and requests are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_one(deadline)
            if msg is None:
                return None
            if msg.code is None:
                self.stray.append(msg.start)
                continue
            if msg.get("Call-ID") == call_id and (msg.get("CSeq") or "").split()[0] == str(cseq):
                if msg.code >= 200:
                    return msg

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def new_tag():
    return secrets.token_hex(5)


def new_call_id():
    return secrets.token_hex(12)


def request(conn, method, uri, call_id, cseq, from_tag, aor, *, to_tag=None, extra=(), body=b""):
    """Headers of a request, in order (no Content-Length yet: `encode` adds it)."""
    host, port = conn.local[0], conn.local[1]
    to = f"<sip:{aor}>" + (f";tag={to_tag}" if to_tag else "")
    headers = [
        ("Via", f"SIP/2.0/{conn.transport} {host}:{port};branch=z9hG4bK{secrets.token_hex(8)}"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{aor}>;tag={from_tag};epid={secrets.token_hex(5)}"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("User-Agent", f"perch-conformance pyspnego/{spnego_version()}"),
    ]
    headers += list(extra)
    return [f"{method} {uri} SIP/2.0", headers, body]


def encode(req):
    start, headers, body = req
    lines = [start] + [f"{n}: {v}" for n, v in headers] + [f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def header(req, name):
    for n, v in req[1]:
        if n.lower() == name.lower():
            return v
    return None


# ---- MS-SIPAE signature text, as Pidgin-SIPE builds it ---------------------------------


def part(value, before, after):
    """sipmsg_find_part_of_header: the text after `before` (or from the start) up to `after`."""
    if value is None:
        return ""
    start = 0
    if before is not None:
        i = value.find(before)
        if i < 0:
            return ""
        start = i + len(before)
    j = value.find(after, start) if after else -1
    return value[start:] if j < 0 else value[start:j]


def pai_uris(value):
    sip = tel = ""
    if not value:
        return sip, tel
    for item in value.split(","):
        uri = part(item, "<", ">") if "<" in item else item.strip()
        if uri.lower().startswith("sip:") and not sip:
            sip = uri
        elif uri.lower().startswith("tel:") and not tel:
            tel = uri
    return sip, tel


def signature_text(get, method, code, rand, num, realm, target):
    """`get(name)` returns a header's first value or None; `method` is the request method
    or, for a response, the method in its CSeq; `code` is None for a request."""
    frm, to = get("From"), get("To")
    pai_sip, pai_tel = pai_uris(get("P-Asserted-Identity"))
    fields = [
        "NTLM", rand, num, realm, target,
        get("Call-ID") or "",
        part(get("CSeq"), None, " "),
        method,
        part(frm, "<", ">"), part(frm, ";tag=", ";"),
        part(to, "<", ">"), part(to, ";tag=", ";"),
        pai_sip, pai_tel,
        get("Expires") or "",
    ]
    text = "".join(f"<{f}>" for f in fields)
    if code is not None:
        text += f"<{code}>"
    return text


# ---- NTLM, all of it pyspnego's --------------------------------------------------------


def spnego_version():
    try:
        from importlib.metadata import version

        return version("pyspnego")
    except Exception:  # pragma: no cover
        return "?"


class Keys:
    """An established connectionless NTLM session: flags and exported session key."""

    def __init__(self, flags, exported):
        self.flags = flags
        self.exported = exported

    def mac(self, usage, text):
        """The 16-byte NTLM signature of `text` (sequence 100) with the `usage` keys:
        "initiate" = client-to-server, "accept" = server-to-client."""
        sign_key = signkey(self.flags, self.exported, usage)
        seal_key = sealkey(self.flags, self.exported, usage)
        seq = struct.pack("<I", SEQUENCE)
        # DATAGRAM: a fresh RC4 handle per message, keyed MD5(SealKey || SeqNum).
        handle = rc4init(md5(seal_key + seq) if self.flags & NegotiateFlags.datagram else seal_key)
        return ntlm_mac(self.flags, handle, sign_key, SEQUENCE, text.encode("utf-8"))


def authenticate_with_ntlmproxy(challenge_bytes, username, password, target):
    """pyspnego's NTLM client: NEGOTIATE (discarded), then the AUTHENTICATE for the CHALLENGE."""
    ctx = spnego.client(
        username, password, hostname=target, service="sip", protocol="ntlm",
        options=spnego.NegotiateOptions.use_ntlm,
    )
    ctx.step()  # NEGOTIATE: connectionless NTLM never sends it
    token = ctx.step(challenge_bytes)
    flags = Authenticate.unpack(token).flags
    return token, Keys(flags, ctx.session_key), type(ctx).__module__ + "." + type(ctx).__name__


def authenticate_from_primitives(challenge_bytes, user, domain, password):
    """A SIPE-shaped connectionless AUTHENTICATE composed from pyspnego's primitives."""
    challenge = Challenge.unpack(challenge_bytes)
    flags = challenge.flags
    info = challenge.target_info or TargetInfo()
    when = info[AvId.timestamp] if AvId.timestamp in info else FileTime.now()
    response_key = ntowfv2(user, ntowfv1(password), domain)
    nt, lm, key_exchange_key = compute_response_v2(
        response_key, challenge.server_challenge, os.urandom(8), when, info
    )
    exported = os.urandom(16)
    token = Authenticate(
        flags, lm, nt, domain_name=domain, username=user, workstation="PERCHCONF",
        encrypted_session_key=rc4k(key_exchange_key, exported),
    ).pack()
    return token, Keys(Authenticate.unpack(token).flags, exported)


def auth_fields(value):
    """name="value" pairs of an NTLM auth header (after the scheme)."""
    return dict(re.findall(r'([A-Za-z-]+)="?([^",]*)"?', value.split(None, 1)[1] if " " in value else ""))


def ntlm_header(msg, name):
    for v in msg.get_all(name):
        if v.split(None, 1)[0].upper() == "NTLM":
            return v
    return None


def flag_names(flags):
    return "|".join(f.name for f in NegotiateFlags if f.value & flags and f.name)


# ---- a signed session -------------------------------------------------------------------


class Session:
    def __init__(self, conn, aor, registrar):
        self.conn = conn
        self.aor = aor
        self.registrar = registrar
        self.call_id = new_call_id()
        self.from_tag = new_tag()
        self.cseq = 0
        self.keys = None
        self.opaque = None
        self.target = None
        self.cnum = 0
        self.snum = 0

    def register(self, authorization=None, signed=False, contact=True):
        self.cseq += 1
        host, port = self.conn.local[0], self.conn.local[1]
        extra = []
        if contact:
            extra.append(("Contact", f"<sip:{self.aor.split('@')[0]}@{host}:{port};transport={self.conn.transport.lower()}>"))
        extra += [("Supported", "gruu-10, adhoclist, msrtc-event-categories"),
                  ("Event", "registration"), ("Expires", "900")]
        req = request(self.conn, "REGISTER", f"sip:{self.registrar}", self.call_id, self.cseq,
                      self.from_tag, self.aor, extra=extra)
        if authorization:
            req[1].append(("Authorization", authorization))
        if signed:
            self.sign(req)
        self.conn.send(encode(req))
        return self.conn.response_to(self.call_id, self.cseq)

    def sign(self, req, *, cnum=None):
        """Adds (or completes) the Authorization of a request with its signature."""
        if cnum is None:
            self.cnum += 1
            cnum = self.cnum
        crand = secrets.token_hex(4)
        method = req[0].split()[0]
        text = signature_text(lambda n: header(req, n), method, None, crand, str(cnum), REALM, self.target)
        sig = self.keys.mac("initiate", text).hex()
        existing = [i for i, (n, v) in enumerate(req[1]) if n == "Authorization"]
        if existing:  # the handshake REGISTER: add crand/cnum/response to its NTLM header
            i = existing[0]
            req[1][i] = ("Authorization", req[1][i][1] + f', crand="{crand}", cnum="{cnum}", response="{sig}"')
        else:
            req[1].append(("Authorization",
                           f'NTLM qop="auth", opaque="{self.opaque}", realm="{REALM}", '
                           f'targetname="{self.target}", crand="{crand}", cnum="{cnum}", response="{sig}"'))
        return text

    def verify(self, msg, *, usage="accept", flip=None):
        """Checks the server's signature on a response. Returns (ok, why)."""
        info = ntlm_header(msg, "Authentication-Info")
        if info is None:
            return False, "no Authentication-Info: NTLM header"
        f = auth_fields(info)
        for name in ("rspauth", "srand", "snum", "opaque", "realm", "targetname"):
            if name not in f:
                return False, f"Authentication-Info lacks {name}"
        if f["opaque"] != self.opaque:
            return False, f"opaque {f['opaque']} is not this association's {self.opaque}"
        method = part(msg.get("CSeq"), " ", "").strip()
        # SIPE takes rand/num/realm/targetname from the header itself (first "rand=", "num=" ...)
        text = signature_text(msg.get, method, msg.code, part(info, 'rand="', '"'), part(info, 'num="', '"'),
                              part(info, 'realm="', '"'), part(info, 'targetname="', '"'))
        try:
            got = bytes.fromhex(f["rspauth"])
        except ValueError:
            return False, f"rspauth {f['rspauth']!r} is not hex"
        if flip is not None:
            got = bytes([got[0]]) + bytes([got[1] ^ 0x01]) + got[2:]  # one bit of the checksum
        expected = self.keys.mac(usage, text)
        if got != expected:
            return False, f"rspauth {got.hex().upper()} != {expected.hex().upper()} over {text!r}"
        return True, text

    def verify_fresh(self, msg):
        """verify() plus: snum strictly rises."""
        ok, why = self.verify(msg)
        if not ok:
            return ok, why
        snum = int(auth_fields(ntlm_header(msg, "Authentication-Info"))["snum"])
        if snum <= self.snum:
            return False, f"snum {snum} does not rise above {self.snum}"
        self.snum = snum
        return True, why

    def options(self, *, signed=True, tamper=None, cnum=None):
        """An OPTIONS on this connection. Returns (request bytes, response)."""
        self.cseq += 1
        req = request(self.conn, "OPTIONS", f"sip:{self.registrar}", self.call_id, self.cseq,
                      self.from_tag, self.aor, extra=[("Accept", "application/sdp")])
        if signed:
            self.sign(req, cnum=cnum)
        if tamper == "signature":
            i = [n for n, _ in req[1]].index("Authorization")
            value = req[1][i][1]
            pos = value.index('response="') + len('response="') + 9
            digit = value[pos]
            value = value[:pos] + ("0" if digit != "0" else "1") + value[pos + 1:]
            req[1][i] = ("Authorization", value)
        elif tamper == "from-tag":
            i = [n for n, _ in req[1]].index("From")
            req[1][i] = ("From", req[1][i][1].replace(f";tag={self.from_tag}", f";tag={self.from_tag}x"))
        data = encode(req)
        self.conn.send(data)
        return data, self.conn.response_to(self.call_id, self.cseq)

    def subscribe_provisioning(self):
        call_id = new_call_id()
        req = request(self.conn, "SUBSCRIBE", f"sip:{self.aor}", call_id, 1, new_tag(), self.aor,
                      extra=[("Event", PROVISIONING), ("Accept", "application/vnd-microsoft-roaming-provisioning-v2+xml"),
                             ("Supported", "com.microsoft.autoextend"), ("Supported", "ms-benotify"),
                             ("Supported", "ms-piggyback-first-notify"),
                             ("Content-Type", "application/vnd-microsoft-roaming-provisioning-v2+xml")],
                      body=b'<provisioningGroupList xmlns="http://schemas.microsoft.com/2006/09/sip/provisiongrouplist">'
                           b'<provisioningGroup name="ServerConfiguration"/></provisioningGroupList>')
        self.sign(req)
        self.conn.send(encode(req))
        return self.conn.response_to(call_id, 1)


def status(msg):
    if msg is None:
        return "no response"
    warning = msg.get("Warning")
    return msg.start.split(" ", 1)[1] + (f" (Warning: {warning})" if warning else "")


def handshake(args, user_for_ntlm, password, *, primitives=False):
    """Steps 1-3 on a new connection. Returns (session, final response, notes)."""
    conn = Conn(args.host, args.port, tls=args.tls, ca=args.ca)
    s = Session(conn, f"{args.user}@{args.domain}", args.domain)
    notes = []
    r1 = s.register()
    if r1 is None or r1.code != 401:
        return s, r1, [f"REGISTER without credentials: {status(r1)} (expected 401)"]
    offer = ntlm_header(r1, "WWW-Authenticate")
    if offer is None:
        return s, r1, ["first 401 has no WWW-Authenticate: NTLM"]
    f1 = auth_fields(offer)
    if f1.get("realm") != REALM or f1.get("version") != "4" or not f1.get("targetname"):
        notes.append(f"first NTLM offer is {offer!r}")
    s.target = f1.get("targetname", args.domain)
    r2 = s.register(f'NTLM qop="auth", realm="{REALM}", targetname="{s.target}", gssapi-data="", version=4')
    chal = ntlm_header(r2, "WWW-Authenticate") if r2 is not None else None
    if r2 is None or r2.code != 401 or chal is None:
        return s, r2, notes + [f"REGISTER with an empty gssapi-data: {status(r2)} (expected 401 with an NTLM CHALLENGE)"]
    f2 = auth_fields(chal)
    s.opaque = f2.get("opaque")
    s.target = f2.get("targetname", s.target)
    challenge_bytes = base64.b64decode(f2.get("gssapi-data", ""))
    parsed = Challenge.unpack(challenge_bytes)
    notes.append(f"CHALLENGE flags 0x{parsed.flags:08x} ({flag_names(parsed.flags)})")
    if primitives:
        token, s.keys = authenticate_from_primitives(challenge_bytes, user_for_ntlm, "", password)
        notes.append(f"AUTHENTICATE composed from pyspnego primitives for user {user_for_ntlm!r}, no domain")
    else:
        token, s.keys, impl = authenticate_with_ntlmproxy(challenge_bytes, user_for_ntlm, password, s.target)
        notes.append(f"AUTHENTICATE from {impl} for {user_for_ntlm!r}")
    a = Authenticate.unpack(token)
    notes.append(f"AUTHENTICATE flags 0x{a.flags:08x}, user {a.user_name!r}, domain {a.domain_name!r}, "
                 f"{len(a.nt_challenge_response or b'')}-byte NTLMv2 response, "
                 f"session key {'present' if a.encrypted_random_session_key else 'absent'}")
    r3 = s.register(
        f'NTLM qop="auth", opaque="{s.opaque}", realm="{REALM}", targetname="{s.target}", '
        f'gssapi-data="{base64.b64encode(token).decode()}", version=4',
        signed=True,
    )
    return s, r3, notes


def wait_for_log(path, pattern, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            text = ""
        hits = [line for line in text.splitlines() if pattern in line]
        if hits or time.monotonic() > deadline:
            return text, hits
        time.sleep(0.2)


def main():
    global TRACE
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--ca")
    p.add_argument("--domain", default="example.test")
    p.add_argument("--netbios", default="EXAMPLE")
    p.add_argument("--user", default="alice")
    p.add_argument("--password", required=True)
    p.add_argument("--wrong-password")
    p.add_argument("--perch-log")
    p.add_argument("--trace")
    p.add_argument("--prefix", default="", help="prefix for step names")
    p.add_argument("--quick", action="store_true", help="handshake, server-signature and signed-request only")
    args = p.parse_args()
    if args.trace:
        TRACE = open(args.trace, "a", encoding="utf-8")
    P = args.prefix
    step("INFO", P + "pyspnego", f"pyspnego {spnego_version()} from {os.path.dirname(spnego.__file__)}, "
         f"over {'TLS' if args.tls else 'TCP'} to {args.host}:{args.port}")

    # -- handshake (pyspnego's NTLM client, DOMAIN\user) ------------------------------------
    t = time.monotonic()
    try:
        s, r3, notes = handshake(args, f"{args.netbios}\\{args.user}", args.password)
    except Exception as e:  # a crash here is a FAIL of the step, not a traceback
        step("FAIL", P + "handshake", f"{type(e).__name__}: {e}")
        return 1
    for n in notes:
        step("INFO", P + "handshake", n)
    if r3 is not None and r3.code == 200:
        step("PASS", P + "handshake", f"REGISTER -> 401 (NTLM offer) -> REGISTER gssapi-data=\"\" -> 401 (CHALLENGE, opaque {s.opaque}) "
             f"-> REGISTER with the AUTHENTICATE, signed cnum=1 -> 200 ({time.monotonic() - t:.1f}s)")
    else:
        step("FAIL", P + "handshake", f"third REGISTER got {status(r3)}, expected 200")
        return 1

    # -- server-signature --------------------------------------------------------------------
    ok, why = s.verify_fresh(r3)
    bad, _ = s.verify(r3, flip=True)
    wrong_dir, _ = s.verify(r3, usage="initiate")
    if ok and not bad and not wrong_dir:
        info = auth_fields(ntlm_header(r3, "Authentication-Info"))
        step("PASS", P + "server-signature", f"200's rspauth {info['rspauth']} (srand {info['srand']}, snum {info['snum']}) verifies "
             f"with pyspnego's server-to-client keys over {why!r}; with one bit flipped it does not, nor with the client-to-server keys")
    else:
        step("FAIL", P + "server-signature", f"verifies={ok} ({why}), flipped-bit verifies={bad}, client keys verify={wrong_dir}")

    # -- signed-request ----------------------------------------------------------------------
    accepted, o1 = s.options()
    o1_ok, o1_why = (s.verify_fresh(o1) if o1 is not None and o1.code == 200 else (False, status(o1)))
    sub = s.subscribe_provisioning()
    sub_ok, sub_why = (s.verify_fresh(sub) if sub is not None and 200 <= sub.code < 300 else (False, status(sub)))
    if o1_ok and sub_ok:
        step("PASS", P + "signed-request", f"signed OPTIONS (cnum={s.cnum - 1}) -> 200 signed over {o1_why!r}; signed SUBSCRIBE "
             f"Event: {PROVISIONING} (cnum={s.cnum}) -> {sub.code} signed over {sub_why!r}, snum now {s.snum}")
    else:
        step("FAIL", P + "signed-request", f"OPTIONS: {o1_why}; SUBSCRIBE: {sub_why}")

    if args.quick:
        s.conn.close()
        return 1 if FAILS else 0

    # -- unsigned-refused --------------------------------------------------------------------
    _, u = s.options(signed=False)
    if u is not None and u.code == 403:
        step("PASS", P + "unsigned-refused", f"unsigned OPTIONS on the signed connection -> {status(u)}")
    else:
        step("FAIL", P + "unsigned-refused", f"unsigned OPTIONS -> {status(u)}, expected 403")

    # -- tampered-refused --------------------------------------------------------------------
    _, tsig = s.options(tamper="signature")
    _, ttag = s.options(tamper="from-tag")
    _, good = s.options()
    good_ok, good_why = (s.verify_fresh(good) if good is not None and good.code == 200 else (False, status(good)))
    if tsig is not None and tsig.code == 403 and ttag is not None and ttag.code == 403 and good_ok:
        step("PASS", P + "tampered-refused", f"one hex digit of the signature changed -> {status(tsig)}; From tag changed after "
             f"signing -> {status(ttag)}; the next correctly signed OPTIONS (cnum={s.cnum}) -> 200, signed")
    else:
        step("FAIL", P + "tampered-refused", f"changed signature -> {status(tsig)}, changed From tag -> {status(ttag)} "
             f"(both expected 403); control OPTIONS -> {good_why}")

    # -- replay-refused ----------------------------------------------------------------------
    s.conn.send(accepted)  # the exact bytes of the first signed OPTIONS, answered 200 above
    m = re.search(rb"CSeq: (\d+)", accepted)
    replay = s.conn.response_to(s.call_id, int(m.group(1)))
    _, reused = s.options(cnum=s.cnum)  # new request, valid signature, but an old cnum
    _, after = s.options()
    after_ok, after_why = (s.verify_fresh(after) if after is not None and after.code == 200 else (False, status(after)))
    if replay is not None and replay.code == 403 and reused is not None and reused.code == 403 and after_ok:
        step("PASS", P + "replay-refused", f"the exact bytes of the accepted OPTIONS re-sent -> {status(replay)}; a new OPTIONS "
             f"correctly signed but with an already used cnum -> {status(reused)}; the next cnum -> 200, signed")
    else:
        step("FAIL", P + "replay-refused", f"replayed bytes -> {status(replay)}, reused cnum -> {status(reused)} (both expected 403); "
             f"control OPTIONS -> {after_why}")
    if s.conn.stray:
        step("INFO", P + "stray-requests", f"server-initiated requests seen: {s.conn.stray}")
    s.conn.close()

    # -- handshake-primitives: UPN user, AUTHENTICATE composed from pyspnego primitives ---------
    try:
        s2, r, notes = handshake(args, f"{args.user}@{args.domain}", args.password, primitives=True)
        for n in notes:
            step("INFO", P + "handshake-primitives", n)
        if r is not None and r.code == 200:
            ok, why = s2.verify_fresh(r)
            _, o = s2.options()
            o_ok, o_why = (s2.verify_fresh(o) if o is not None and o.code == 200 else (False, status(o)))
            if ok and o_ok:
                step("PASS", P + "handshake-primitives", "user alice@example.test with no domain, minimal AUTHENTICATE (no MIC, "
                     "no Version): 200 with a valid rspauth, then a signed OPTIONS -> 200, signed")
            else:
                step("FAIL", P + "handshake-primitives", f"200, but rspauth: {why}; OPTIONS: {o_why}")
        else:
            step("FAIL", P + "handshake-primitives", f"third REGISTER got {status(r)}, expected 200")
        s2.conn.close()
    except Exception as e:
        step("FAIL", P + "handshake-primitives", f"{type(e).__name__}: {e}")

    # -- wrong-password ----------------------------------------------------------------------
    if args.wrong_password:
        try:
            sw, rw, _ = handshake(args, f"{args.netbios}\\{args.user}", args.wrong_password)
            sw.conn.close()
        except Exception as e:
            rw = None
            step("INFO", P + "wrong-password", f"{type(e).__name__}: {e}")
        log_text, hits = wait_for_log(args.perch_log, "NTLM authentication failed") if args.perch_log else ("", [])
        secrets_ = {args.password, args.wrong_password}
        for pw in (args.password, args.wrong_password):
            h = ntowfv1(pw)
            secrets_ |= {h.hex(), h.hex().upper(), base64.b64encode(h).decode(),
                         ntowfv2(args.user, h, args.netbios).hex()}
        leaked = sorted(x for x in secrets_ if x in log_text)
        problems = []
        if rw is None or rw.code != 401:
            problems.append(f"third REGISTER got {status(rw)}, expected 401")
        if not args.perch_log:
            problems.append("no --perch-log to check")
        elif not hits:
            problems.append("perch's log has no 'NTLM authentication failed' line")
        if leaked:
            problems.append(f"perch's log contains {len(leaked)} of the passwords/hashes")
        if problems:
            step("FAIL", P + "wrong-password", "; ".join(problems))
        else:
            line = re.sub(r"^\S+\s+", "", hits[-1]).strip()
            step("PASS", P + "wrong-password", f"right handshake with a wrong password -> {status(rw)}; perch logged "
                 f"{line!r}; neither password nor its NT hash / NTOWFv2 key (hex or base64) appears anywhere in perch's log")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
