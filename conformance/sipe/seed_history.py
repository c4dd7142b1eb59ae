#!/usr/bin/env python3
"""Posts a few messages to a perch room as a trusted-network user, over plain TCP, so the
SIPE run has history to show. Raw SIP and XCCOS, standard library only.

    seed_history.py HOST:PORT USER@DOMAIN ROOM-URI TEXT...
"""
import socket
import sys


def frame(sock, buf):
    """Reads one SIP message; returns (start line, headers dict, body, rest of buffer)."""
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
        headers.setdefault(name.strip().lower(), value.strip())
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return lines[0], headers, rest[:length], rest[length:]


def main():
    addr, user, room, *texts = sys.argv[1:]
    host, port = addr.rsplit(":", 1)
    domain = user.split("@")[1]
    chat = "sip:ocschat@%s" % domain
    sock = socket.create_connection((host, int(port)), timeout=10)
    buf = b""
    state = {"cseq": 0, "to": "<%s>" % chat}

    def request(method, uri, call_id, to, body="", cseq=None):
        if cseq is None:
            state["cseq"] += 1
            cseq = state["cseq"]
        msg = ("%s %s SIP/2.0\r\nVia: SIP/2.0/TCP %s\r\nFrom: <sip:%s>;tag=seed1;epid=seed\r\n"
               "To: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\nMax-Forwards: 70\r\nContact: <sip:%s>\r\n"
               "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
               % (method, uri, addr, user, to, call_id, cseq, method, user, len(body.encode()), body))
        sock.sendall(msg.encode())

    def expect(code):
        nonlocal buf
        while True:
            start, headers, body, buf = frame(sock, buf)
            if start.startswith("SIP/2.0 "):
                if not start.startswith("SIP/2.0 %d" % code):
                    raise SystemExit("expected %d, got %s" % (code, start))
                return headers
            # A server INFO (reply or echo): answer 200.
            ok = "SIP/2.0 200 OK\r\n%sContent-Length: 0\r\n\r\n" % "".join(
                "%s: %s\r\n" % (n, headers[n.lower()]) for n in ("Via", "From", "To", "Call-ID", "CSeq"))
            sock.sendall(ok.encode())

    request("REGISTER", "sip:%s" % domain, "seed-reg", "<sip:%s>" % user, cseq=1)
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
