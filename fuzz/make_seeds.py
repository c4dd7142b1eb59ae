#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (run from anywhere; overwrites).

SIP seeds: SIPE's messages from ../shared/reference/xccos-protocol.md §1 (REGISTER,
SUBSCRIBE, INVITE, ACK, INFO, UPDATE, BYE), a few responses, compact-form, folded-header and
bare-LF variants, keep-alives. XCCOS seeds: every envelope a client sends in
conformance/transcripts/*.txt (`who > INFO ` stripped, `{Room}` / `{Room.id}` replaced by a
made-up ma-chan URI / id), a few server replies from the same files (`*` filled in), and a
handful of hand-made XML edge cases. The framer seeds are SIP streams behind the 6 control
bytes described in fuzz_targets/framer.rs.
"""

import hashlib
import pathlib
import re
import shutil
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"

DOMAIN = "example.test"
VIA_BRANCH = "Via: SIP/2.0/tls 10.0.0.5:53412;branch=z9hG4bK1A2B3C4D5E6F7A8B9C0D"
VIA = "Via: SIP/2.0/tls 10.0.0.5:53412"
FROM = "From: <sip:alice@example.test>;tag=48213390;epid=8f3e2a1b0c"
TO_SELF = "To: <sip:alice@example.test>"
TO_CHAT = "To: <sip:ocschat@example.test>"
TO_CHAT_TAG = "To: <sip:ocschat@example.test>;tag=9c1f52e0"
UA = "User-Agent: Purple/2.14.12 Sipe/1.25.0"
CALL_REG = "Call-ID: 12ABg34CDa56EFi78GHm90IJt12KLb34MNx56OPx"
CALL_DLG = "Call-ID: 7A1Bg02C3a4D5Ei6F7Gm8H9It0J1Kb2L3Mx4N5Ox"

SDP = (
    "v=0\r\no=- 0 0 IN IP4 10.0.0.5\r\ns=session\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
    "m=message 5061 sip null\r\n"
    "a=accept-types:text/plain text/html image/gif multipart/alternative "
    "application/im-iscomposing+xml application/ms-imdn+xml text/x-msmsgsinvite\r\n"
)
PROVISIONING_REQ = (
    '<provisioningGroupList xmlns="http://schemas.microsoft.com/2006/09/sip/provisioninggrouplist">'
    ' <provisioningGroup name="ServerConfiguration"/> <provisioningGroup name="meetingPolicy"/>'
    ' <provisioningGroup name="persistentChatConfiguration"/> <provisioningGroup name="ucPolicy"/>'
    "</provisioningGroupList>"
)
PROVISIONING_RESP = (
    '<provisionGroupList xmlns="http://schemas.microsoft.com/2006/09/sip/provisiongrouplist-notification">\r\n'
    '  <provisionGroup name="ServerConfiguration"/>\r\n'
    '  <provisionGroup name="persistentChatConfiguration">\r\n'
    "    <propertyEntryList>\r\n"
    '      <property name="EnablePersistentChat">true</property>\r\n'
    '      <property name="DefaultPersistentChatPoolUri">sip:ocschat@example.test</property>\r\n'
    "    </propertyEntryList>\r\n"
    "  </provisionGroup>\r\n"
    "</provisionGroupList>"
)
REQURI = (
    '<xccos ver="1" envid="1804289383" xmlns="urn:parlano:xml:ns:xccos">'
    '<cmd id="cmd:requri" seqid="1"><data/></cmd></xccos>'
)
REQURI_RPL = (
    '<xccos ver="1" envid="5000000001" xmlns="urn:parlano:xml:ns:xccos"><rpl id="rpl:requri" seqid="1">'
    '<commandid seqid="1" envid="1804289383"/><resp code="200">SUCCESS_OK</resp>'
    '<data><uib uri="sip:ocschat@example.test"/></data></rpl></xccos>'
)


def message(start, headers, body="", eol="\r\n", length=True):
    """A SIP message with a correct Content-Length (in bytes) unless `length` is False."""
    body_bytes = body.encode()
    lines = [start, *headers]
    if length:
        lines.append(f"Content-Length: {len(body_bytes)}")
    return (eol.join(lines) + eol + eol).encode() + body_bytes


def sip_messages():
    register = message(
        "REGISTER sip:example.test SIP/2.0",
        [
            VIA_BRANCH, FROM, TO_SELF, "Max-Forwards: 70", "CSeq: 1 REGISTER", UA, CALL_REG,
            'Contact: <sip:10.0.0.5:53412;transport=tls;ms-opaque=d3470f2e1d>;methods="INVITE, MESSAGE, INFO, SUBSCRIBE, OPTIONS, BYE, CANCEL, NOTIFY, ACK, REFER, BENOTIFY";proxy=replace;+sip.instance="<urn:uuid:01234567-89ab-cdef-0123-456789abcdef>"',
            "Supported: gruu-10, adhoclist, msrtc-event-categories, com.microsoft.msrtc.presence",
            "Event: registration", "Allow-Events: presence", "ms-keep-alive: UAC;hop-hop=yes",
        ],
    )
    register_digest = message(
        "REGISTER sip:example.test SIP/2.0",
        [
            VIA_BRANCH, FROM, TO_SELF, "Max-Forwards: 70", "CSeq: 2 REGISTER", CALL_REG,
            'Authorization: Digest username="alice", realm="example.test", nonce="MTcwMDAwMDAwMDpkZWFkYmVlZg", uri="sip:example.test", response="6629fae49393a05397450978507c4ef1", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="0a4f113b"',
            "Contact: <sip:10.0.0.5:53412;transport=tls>",
        ],
    )
    subscribe = message(
        "SUBSCRIBE sip:alice@example.test SIP/2.0",
        [
            VIA_BRANCH, FROM, TO_SELF, "CSeq: 1 SUBSCRIBE", CALL_REG,
            "Event: vnd-microsoft-provisioning-v2",
            "Accept: application/vnd-microsoft-roaming-provisioning-v2+xml",
            "Supported: com.microsoft.autoextend", "Supported: ms-benotify",
            "Proxy-Require: ms-benotify", "Supported: ms-piggyback-first-notify", "Expires: 0",
            "Content-Type: application/vnd-microsoft-roaming-provisioning-v2+xml",
            "Contact: <sip:alice@example.test;opaque=user:epid:AbCdEf;gruu>",
        ],
        PROVISIONING_REQ,
    )
    invite = message(
        "INVITE sip:ocschat@example.test SIP/2.0",
        [
            VIA, FROM, TO_CHAT, "Max-Forwards: 70", "CSeq: 1 INVITE", UA, CALL_DLG,
            "Supported: ms-sender", "Contact: <sip:alice@example.test;opaque=user:epid:AbCdEf;gruu>",
            "Content-Type: application/sdp",
        ],
        SDP,
    )
    ack = message(
        "ACK sip:ocschat@example.test:5061;transport=tls SIP/2.0",
        [VIA, FROM, TO_CHAT_TAG, "Max-Forwards: 70", "CSeq: 1 ACK", UA, CALL_DLG],
    )
    info = message(
        "INFO sip:ocschat@example.test:5061;transport=tls SIP/2.0",
        [VIA, FROM, TO_CHAT_TAG, "Max-Forwards: 70", "CSeq: 2 INFO", UA, CALL_DLG,
         "Content-Type: text/plain"],
        REQURI,
    )
    update = message(
        "UPDATE sip:ocschat@example.test:5061;transport=tls SIP/2.0",
        [VIA, FROM, TO_CHAT_TAG, "CSeq: 3 UPDATE", CALL_DLG],
    )
    bye = message(
        "BYE sip:ocschat@example.test:5061;transport=tls SIP/2.0",
        [VIA, FROM, TO_CHAT_TAG, "Max-Forwards: 70", "CSeq: 4 BYE", UA, CALL_DLG],
    )
    service = message(
        "SERVICE sip:example.test SIP/2.0",
        [VIA_BRANCH, FROM, TO_SELF, "CSeq: 5 SERVICE", CALL_REG,
         "Content-Type: application/SOAP+xml"],
        "<SOAP-ENV:Envelope/>",
    )
    options = message(
        "OPTIONS sip:example.test SIP/2.0",
        [VIA_BRANCH, FROM, TO_SELF, "CSeq: 1 OPTIONS", "Call-ID: opt1", "Accept: application/sdp"],
    )
    ok_register = message(
        "SIP/2.0 200 OK",
        [
            VIA_BRANCH, FROM, TO_SELF + ";tag=srv1", CALL_REG, "CSeq: 1 REGISTER", "Expires: 3600",
            'Contact: <sip:10.0.0.5:53412;transport=tls;ms-opaque=d3470f2e1d>;expires=3600;+sip.instance="<urn:uuid:01234567-89ab-cdef-0123-456789abcdef>";gruu="sip:alice@example.test;opaque=user:epid:AbCdEf;gruu"',
            "Supported: msrtc-event-categories", "Supported: adhoclist",
            "Allow-Events: vnd-microsoft-provisioning-v2",
            "ms-keep-alive: UAS; tcp=no; hop-hop=yes; end-point=no; timeout=300", "Server: RTC/5.0",
        ],
    )
    ok_subscribe = message(
        "SIP/2.0 200 OK",
        [
            VIA_BRANCH, FROM, TO_SELF + ";tag=srv2", CALL_REG, "CSeq: 1 SUBSCRIBE",
            "Event: vnd-microsoft-provisioning-v2", "ms-piggyback-cseq: 1", "Expires: 0",
            "subscription-state: terminated;expires=0",
            "Content-Type: application/vnd-microsoft-roaming-provisioning-v2+xml",
        ],
        PROVISIONING_RESP,
    )
    ok_invite = message(
        "SIP/2.0 200 OK",
        [
            VIA, FROM, TO_CHAT_TAG, CALL_DLG, "CSeq: 1 INVITE",
            "Contact: <sip:ocschat@chat.example.test:5061;transport=tls>", "Supported: timer",
            "Session-Expires: 1800;refresher=uac", "Content-Type: application/sdp",
        ],
        SDP.replace("10.0.0.5", "192.0.2.1"),
    )
    unauthorized = message(
        "SIP/2.0 401 Unauthorized",
        [
            VIA_BRANCH, FROM, TO_SELF + ";tag=srv3", CALL_REG, "CSeq: 1 REGISTER",
            'WWW-Authenticate: Digest realm="example.test", nonce="MTcwMDAwMDAwMDpkZWFkYmVlZg", algorithm=SHA-256, qop="auth"',
            'WWW-Authenticate: Digest realm="example.test", nonce="MTcwMDAwMDAwMDpkZWFkYmVlZg", algorithm=MD5, qop="auth"',
        ],
    )
    trying = message("SIP/2.0 100 Trying", [VIA, FROM, TO_CHAT, CALL_DLG, "CSeq: 1 INVITE"])
    not_found = message(
        "SIP/2.0 481 Call/Transaction Does Not Exist",
        [VIA, FROM, TO_CHAT_TAG, CALL_DLG, "CSeq: 5 INFO",
         'Warning: 399 perch "no such dialog"'],
    )
    server_info = message(
        "INFO sip:alice@example.test;opaque=user:epid:AbCdEf;gruu SIP/2.0",
        [
            "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK7d2e0001", "Max-Forwards: 70",
            "From: <sip:ocschat@example.test>;tag=9c1f52e0",
            "To: <sip:alice@example.test>;tag=48213390;epid=8f3e2a1b0c", CALL_DLG, "CSeq: 1 INFO",
            "Content-Type: text/plain",
        ],
        REQURI_RPL,
    )
    compact = message(
        "INFO sip:ocschat@example.test SIP/2.0",
        ["v: SIP/2.0/tls 10.0.0.5:53412", "f: <sip:alice@example.test>;tag=48213390",
         "t: <sip:ocschat@example.test>;tag=9c1f52e0", "i: compact1", "CSeq: 2 INFO",
         "c: text/plain", "k: ms-sender", f"l: {len(REQURI)}"],
        REQURI,
        length=False,
    )
    folded = message(
        "INVITE sip:ocschat@example.test SIP/2.0",
        [
            VIA, FROM, TO_CHAT, "CSeq: 1 INVITE", CALL_DLG,
            "Subject: a subject\r\n  folded over\r\n\tthree lines",
            "Supported: ms-sender,\r\n timer", "Contact: <sip:alice@example.test>\r\n ;proxy=replace",
        ],
    )
    bare_lf = message(
        "BYE sip:ocschat@example.test SIP/2.0",
        [VIA, FROM, TO_CHAT_TAG, "CSeq: 4 BYE", CALL_DLG, "X-Odd : spaced name"],
        eol="\n",
    )
    extension = message(
        "BENOTIFY sip:alice@example.test SIP/2.0",
        [VIA_BRANCH, "From: sip:ocschat@example.test;tag=1", "To: sip:alice@example.test;tag=2",
         "i: ext1", "CSeq: 9 BENOTIFY", "Event: vnd-microsoft-provisioning-v2"],
    )
    return {
        "register": register,
        "register-digest": register_digest,
        "subscribe": subscribe,
        "invite": invite,
        "ack": ack,
        "info-requri": info,
        "update": update,
        "bye": bye,
        "service": service,
        "options": options,
        "200-register": ok_register,
        "200-subscribe": ok_subscribe,
        "200-invite": ok_invite,
        "401-register": unauthorized,
        "100-trying": trying,
        "481-info": not_found,
        "server-info-rpl": server_info,
        "compact-info": compact,
        "folded-invite": folded,
        "bare-lf-bye": bare_lf,
        "benotify": extension,
    }


def sip_streams(msgs):
    """Multi-message and keep-alive streams (the framer is a stream cutter)."""
    return {
        "keepalive-crlf": b"\r\n\r\n",
        "keepalive-lf": b"\n\n",
        "keepalive-then-info": b"\r\n\r\n\r\n" + msgs["info-requri"] + b"\n\n",
        "pipeline-invite-ack-info": msgs["invite"] + msgs["ack"] + msgs["info-requri"],
        "truncated-register": msgs["register"][:200],
    }


def xccos_envelopes():
    ids = {}

    def room(match):
        name, suffix = match.group(1), match.group(2)
        uid = ids.setdefault(name, "%08x-0000-4000-8000-%012x" % (
            int(hashlib.sha1(name.encode()).hexdigest()[:8], 16), len(ids) + 1))
        return uid if suffix else f"ma-chan://{DOMAIN}/{uid}"

    placeholder = re.compile(r"\{([A-Z][A-Za-z]*)(\.id)?\}")
    sent, received = [], []
    for path in sorted((REPO / "conformance" / "transcripts").glob("*.txt")):
        for line in path.read_text().splitlines():
            m = re.match(r"^\w+ ([<>]) INFO (.*)$", line)
            if not m:
                continue
            body = placeholder.sub(room, m.group(2))
            if m.group(1) == ">":
                sent.append(body)
            else:
                received.append(body.replace('="*"', '="1"').replace(">*<", ">x<"))
    out = {}
    for body in dict.fromkeys(sent):
        kind = re.search(r'<(?:cmd id="cmd:(\w+)"|(grpchat))', body)
        prefix = f"cmd-{kind.group(1)}" if kind.group(1) else "post-grpchat"
        n = sum(1 for k in out if k.rsplit("-", 1)[0] == prefix)
        out[f"{prefix}-{n}"] = body.encode()
    for body in dict.fromkeys(received):
        kind = re.search(r'<(?:rpl|ntc) id="(\w+):(\w+)"', body)
        if kind and not any(k.endswith(f"{kind.group(1)}-{kind.group(2)}") for k in out):
            out[f"srv-{kind.group(1)}-{kind.group(2)}"] = body.encode()
    return out


def xml_edge_cases():
    return {
        "xml-decl-comment-pi": b'<?xml version="1.0" encoding="utf-8"?><!-- c --><?pi x?>'
        + REQURI.encode() + b"\r\n",
        "xml-entities-charrefs": b'<xccos envid="1"><grpchat id="grpchat" seqid="1" chanUri="ma-chan://example.test/1"'
        b' author="sip:a@example.test"><chat>&lt;&gt;&amp;&quot;&apos;&#13;&#10;&#x263A;&#65;</chat></grpchat></xccos>',
        "xml-cdata-mixed": b"<xccos><grpchat id=\"grpchat\"><chat>a<![CDATA[<b>&amp;]]>c<x/>d</chat></grpchat></xccos>",
        "xml-prefixes-attrs": b'<p:xccos xmlns:p="urn:parlano:xml:ns:xccos" p:envid="2" a=\'s q\' b="t&#9;u&#10;v">'
        b'<p:cmd id="cmd:join" seqid="3"><p:data><chanib uri="ma-chan://example.test/9" topic="x\ty\r\nz"/></p:data></p:cmd></p:xccos>',
        "xml-whitespace-indent": b'<xccos envid="3">\r\n  <cmd id="cmd:getinv" seqid="1">\n\t<data> </data>\n  </cmd>\n</xccos>\n',
        "xml-rtf-text": '<xccos><grpchat id="grpchat"><chat>{\\rtf1 \u00e9t\u00e9 \U0001F600}</chat></grpchat></xccos>'.encode(),
        "xml-doctype": b'<!DOCTYPE x [<!ENTITY e "lol">]><xccos>&e;</xccos>',
        "xml-provisioning": PROVISIONING_RESP.encode(),
    }


def write(target, name, data):
    assert len(data) < 4096, (target, name, len(data))
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    msgs = sip_messages()
    streams = sip_streams(msgs)
    for target in ("sip_parse", "sip_roundtrip"):
        for name, data in {**msgs, **streams}.items():
            write(target, name, data)

    # framer: control bytes = split (u16 LE), mode (bit 0: small limits), header/count/body
    # limit parameters. Default limits unless stated.
    def control(split, small=False, header=0, count=0, body=0):
        return struct.pack("<HBBBB", split, 1 if small else 0, header, count, body)

    framer = {
        "register-split-mid": control(100) + msgs["register"],
        "info-split-in-blank-line": control(msgs["info-requri"].index(b"\r\n\r\n") + 3)
        + msgs["info-requri"],
        "invite-split-in-body": control(len(msgs["invite"]) - 10) + msgs["invite"],
        "compact-split-0": control(0) + msgs["compact-info"],
        "folded-split-end": control(len(msgs["folded-invite"])) + msgs["folded-invite"],
        "bare-lf": control(17) + msgs["bare-lf-bye"],
        "keepalive-split-cr": control(1) + b"\r\n\r\n\r\n",
        "keepalive-then-info": control(3) + streams["keepalive-then-info"],
        "pipeline": control(len(msgs["invite"]) + 5) + streams["pipeline-invite-ack-info"],
        "small-limits-header-too-large": control(50, True, 20, 10, 100) + msgs["register"],
        "small-limits-too-many-headers": control(50, True, 250, 3, 100) + msgs["ack"],
        "small-limits-body-too-large": control(50, True, 250, 31, 10) + msgs["info-requri"],
        "bad-content-length": control(40) + b"INFO sip:x SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab",
    }
    for name, data in framer.items():
        write("framer", name, data)

    envelopes = xccos_envelopes()
    edge = xml_edge_cases()
    for target in ("xccos_parse", "xml_roundtrip"):
        for name, data in {**envelopes, **edge}.items():
            write(target, name, data)


if __name__ == "__main__":
    main()
