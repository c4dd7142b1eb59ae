#!/usr/bin/env python3
"""Posts a few messages to a perch room over plain TCP, so the SIPE run has history to show.
Signs in with Digest (MD5, qop=auth) using PASSWORD. Raw SIP and XCCOS, standard library only.

    seed_history.py HOST:PORT USER@DOMAIN PASSWORD ROOM-URI TEXT...
"""
import hashlib
import re
import socket
import sys


def frame(sock, buf, all_headers=False):
    """Reads one SIP message; returns (start line, headers dict, body, rest of buffer). The
    dict maps a lower-case name to its first value, or to every value with `all_headers`."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("perch closed the connection")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if all_headers:
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        else:
            headers.setdefault(name.strip().lower(), value.strip())
    length = int((headers.get("content-length") or ["0"])[0] if all_headers
                 else headers.get("content-length", "0"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return lines[0], headers, rest[:length], rest[length:]


def main():
    addr, user, password, room, *texts = sys.argv[1:]
    host, port = addr.rsplit(":", 1)
    domain = user.split("@")[1]
    chat = "sip:ocschat@%s" % domain
    sock = socket.create_connection((host, int(port)), timeout=10)
    buf = b""
    state = {"cseq": 0, "to": "<%s>" % chat}

    def request(method, uri, call_id, to, body="", cseq=None, extra=""):
        if cseq is None:
            state["cseq"] += 1
            cseq = state["cseq"]
        msg = ("%s %s SIP/2.0\r\nVia: SIP/2.0/TCP %s\r\nFrom: <sip:%s>;tag=seed1;epid=seed\r\n"
               "To: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\nMax-Forwards: 70\r\nContact: <sip:%s>\r\n"
               "%sContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
               % (method, uri, addr, user, to, call_id, cseq, method, user, extra,
                  len(body.encode()), body))
        sock.sendall(msg.encode())

    def expect(code, all_headers=False):
        nonlocal buf
        while True:
            start, headers, body, buf = frame(sock, buf, all_headers)
            if start.startswith("SIP/2.0 "):
                if not start.startswith("SIP/2.0 %d" % code):
                    raise SystemExit("expected %d, got %s" % (code, start))
                return headers
            # A server INFO (reply or echo): answer 200.
            ok = "SIP/2.0 200 OK\r\n%sContent-Length: 0\r\n\r\n" % "".join(
                "%s: %s\r\n" % (n, headers[n.lower()]) for n in ("Via", "From", "To", "Call-ID", "CSeq"))
            sock.sendall(ok.encode())

    register_uri = "sip:%s" % domain
    request("REGISTER", register_uri, "seed-reg", "<sip:%s>" % user, cseq=1)
    challenges = expect(401, all_headers=True)["www-authenticate"]
    digest = next(c for c in challenges if c.startswith("Digest") and "algorithm=MD5" in c)
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', digest[len("Digest"):]))
    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()
    ha1 = md5("%s:%s:%s" % (user.split("@")[0], fields["realm"], password))
    ha2 = md5("REGISTER:%s" % register_uri)
    response = md5("%s:%s:00000001:5eed:auth:%s" % (ha1, fields["nonce"], ha2))
    auth = ('Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", '
            'response="%s", algorithm=MD5, cnonce="5eed", qop=auth, nc=00000001\r\n'
            % (user.split("@")[0], fields["realm"], fields["nonce"], register_uri, response))
    request("REGISTER", register_uri, "seed-reg", "<sip:%s>" % user, cseq=2, extra=auth)
    expect(200)
    request("INVITE", chat, "seed-chat", state["to"], cseq=1)
    state["to"] = expect(200)["to"]
    state["cseq"] = 1
    request("ACK", chat, "seed-chat", state["to"], cseq=1)
    value = room.rsplit("/", 1)[1]
    envelope = '<xccos ver="1" envid="%d" xmlns="urn:parlano:xml:ns:xccos">%s</xccos>'
    join = '<cmd id="cmd:join" seqid="1"><data><chanid key="0" domain="%s" value="%s"/></data></cmd>'
    request("INFO", chat, "seed-chat", state["to"], envelope % (1, join % (domain, value)))
    expect(200)
    for n, text in enumerate(texts):
        post = ('<grpchat id="grpchat" seqid="1" chanUri="%s" author="sip:%s"><chat>%s</chat></grpchat>'
                % (room, user, text.replace("&", "&amp;").replace("<", "&lt;")))
        request("INFO", chat, "seed-chat", state["to"], envelope % (n + 2, post))
        expect(200)
    request("BYE", chat, "seed-chat", state["to"])
    expect(200)
    print("seeded %d messages into %s as %s" % (len(texts), room, user))


if __name__ == "__main__":
    main()
