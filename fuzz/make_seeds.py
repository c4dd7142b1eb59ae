#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (run from anywhere; overwrites all
but the `regress-*` inputs kept from findings).

SIP seeds: SIPE's messages from ../shared/reference/xccos-protocol.md §1 (REGISTER,
SUBSCRIBE, INVITE, ACK, INFO, UPDATE, BYE), a few responses, compact-form, folded-header and
bare-LF variants, keep-alives. XCCOS seeds: every envelope a client sends in
conformance/transcripts/*.txt (`who > INFO ` stripped, `{Room}` / `{Room.id}` replaced by a
made-up ma-chan URI / id), a few server replies from the same files (`*` filled in), and a
handful of hand-made XML edge cases. The framer seeds are SIP streams behind the 6 control
bytes described in fuzz_targets/framer.rs. The `ntlm` seeds (mode byte, see
fuzz_targets/ntlm.rs) are NTLM messages and MS-SIPAE-signed SIP messages made with the
fixed keys and entropy of that target. The `session` seeds (10 control bytes, see
fuzz_targets/session.rs) are the transcripts' client commands, and other requests and
answers, in the chat dialog that target sets up, signed in by trust and by NTLM.
"""

import base64
import hashlib
import hmac
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


# NTLM / MS-SIPAE (target `ntlm`). The helpers below follow src/lync/session/ntlm.rs and
# sipae.rs byte for byte, so the signed messages verify in the target.

# MS-NLMP §4.2.4.3: SPEC_AUTHENTICATE in ntlm.rs's tests.
NTLM_SPEC_AUTHENTICATE = bytes.fromhex("".join("""
    4e544c4d53535000 03000000 18001800 6c000000 54005400 84000000 0c000c00 48000000
    08000800 54000000 10001000 5c000000 10001000 d8000000 358288e2 0501280a0000000f
    44006f006d00610069006e00 5500730065007200 43004f004d0050005500540045005200
    86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa
    68cd0ab851e51c96aabc927bebef6a1c 0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa
    00000000 02000c0044006f006d00610069006e00 01000c00530065007200760065007200
    00000000 00000000
    c5dad2544fc9799094ce1ce90bc9d03e""".split()))

NTLM_UNICODE, NTLM_REQUEST_TARGET, NTLM_SIGN, NTLM_DATAGRAM = 0x1, 0x4, 0x10, 0x40
NTLM_NTLM, NTLM_ALWAYS_SIGN, NTLM_TARGET_TYPE_DOMAIN = 0x200, 0x8000, 0x10000
NTLM_ESS, NTLM_IDENTIFY, NTLM_TARGET_INFO, NTLM_VERSION = 0x80000, 0x100000, 0x800000, 0x2000000
NTLM_128, NTLM_KEY_EXCH = 0x20000000, 0x40000000
NTLM_OFFERED = (
    NTLM_UNICODE | NTLM_REQUEST_TARGET | NTLM_SIGN | NTLM_DATAGRAM | NTLM_NTLM | NTLM_ALWAYS_SIGN
    | NTLM_TARGET_TYPE_DOMAIN | NTLM_ESS | NTLM_IDENTIFY | NTLM_TARGET_INFO | NTLM_VERSION
    | NTLM_128 | NTLM_KEY_EXCH
)
NTLM_NAMES = ("EXAMPLE", "CHAT", "example.test", "chat.example.test")
SIPAE_REALM = "SIP Communications Service"
SIPAE_TARGET = "chat.example.test"


def md4(data):
    """RFC 1320 (hashlib's OpenSSL may not have MD4)."""
    def f(x, y, z): return (x & y) | (~x & z)
    def g(x, y, z): return (x & y) | (x & z) | (y & z)
    def h(x, y, z): return x ^ y ^ z
    def rotl(x, n): return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    padded = data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + struct.pack("<Q", 8 * len(data))
    for block in range(0, len(padded), 64):
        x = struct.unpack("<16I", padded[block:block + 64])
        a, b, c, d = state
        for i in range(16):
            a, b, c, d = d, rotl((a + f(b, c, d) + x[i]) & 0xFFFFFFFF, (3, 7, 11, 19)[i % 4]), b, c
        for i in range(16):
            k = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)[i]
            a, b, c, d = d, rotl((a + g(b, c, d) + x[k] + 0x5A827999) & 0xFFFFFFFF, (3, 5, 9, 13)[i % 4]), b, c
        for i in range(16):
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            a, b, c, d = d, rotl((a + h(b, c, d) + x[k] + 0x6ED9EBA1) & 0xFFFFFFFF, (3, 9, 11, 15)[i % 4]), b, c
        state = [(s + v) & 0xFFFFFFFF for s, v in zip(state, (a, b, c, d))]
    return struct.pack("<4I", *state)


def rc4(key, data):
    s, j = list(range(256)), 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def hmac_md5(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.md5).digest()


def utf16(text):
    return text.encode("utf-16-le")


def nt_hash(password):
    return md4(utf16(password))


# MS-NLMP §4.2.1 / §4.2.4.1.1: the NT hash of "Password" and NTOWFv2 for User in Domain.
assert nt_hash("Password").hex() == "a4f49c406510bdcab6824ee7c30fd852"
assert hmac_md5(nt_hash("Password"), utf16("USERDomain")).hex() == "0c868a403bfd7a93a3001ef22ef02e3f"


def security_buffer(length, offset):
    return struct.pack("<HHI", length, length, offset)


def ntlm_challenge(server_challenge, filetime):
    """`Challenge::new(server_challenge, names, filetime).message`."""
    netbios_domain, netbios_computer, dns_domain, dns_computer = NTLM_NAMES
    target_name = utf16(netbios_domain)
    info = b""
    for av_id, value in ((2, utf16(netbios_domain)), (1, utf16(netbios_computer)),
                         (4, utf16(dns_domain)), (3, utf16(dns_computer)),
                         (7, struct.pack("<Q", filetime)), (0, b"")):
        info += struct.pack("<HH", av_id, len(value)) + value
    return (
        b"NTLMSSP\0" + struct.pack("<I", 2) + security_buffer(len(target_name), 56)
        + struct.pack("<I", NTLM_OFFERED) + server_challenge + b"\0" * 8
        + security_buffer(len(info), 56 + len(target_name))
        + bytes([10, 0, 0x63, 0x45, 0, 0, 0, 0x0F]) + target_name + info
    )


def ntlm_respond(challenge, user, domain, workstation, password, client_challenge, exported_key):
    """`Authenticate::encode` of `ntlm::respond`'s answer to a CHALLENGE from
    `ntlm_challenge` (timestamp taken from it; KEY_EXCH is offered, so the session key is
    `exported_key` sealed with the session base key)."""
    server_challenge = challenge[24:32]
    length, _, offset = struct.unpack("<HHI", challenge[40:48])
    target_info = challenge[offset:offset + length]
    timestamp = target_info[target_info.index(struct.pack("<HH", 7, 8)) + 4:][:8]
    key = hmac_md5(nt_hash(password), utf16(user.upper() + domain))
    blob = b"\x01\x01" + b"\0" * 6 + timestamp + client_challenge + b"\0" * 4 + target_info + b"\0" * 4
    proof = hmac_md5(key, server_challenge, blob)
    fields = [
        hmac_md5(key, server_challenge, client_challenge) + client_challenge,
        proof + blob,
        utf16(domain),
        utf16(user),
        utf16(workstation),
        rc4(hmac_md5(key, proof), exported_key),
    ]
    message = b"NTLMSSP\0" + struct.pack("<I", 3)
    offset = 64
    for data in fields:
        message += security_buffer(len(data), offset)
        offset += len(data)
    return message + struct.pack("<I", NTLM_OFFERED) + b"".join(fields)


def sipae_sign(exported_key, direction, buffer):
    """`SessionKeys::sign` (128-bit keys, KEY_EXCH and DATAGRAM, sequence 100) of a
    signature buffer, in upper-case hex as the headers carry it."""
    sign_key = hashlib.md5(exported_key + f"session key to {direction} signing key magic constant\0".encode()).digest()
    seal_key = hashlib.md5(exported_key + f"session key to {direction} sealing key magic constant\0".encode()).digest()
    sequence = struct.pack("<I", 100)
    checksum = hmac_md5(sign_key, sequence, buffer.encode())[:8]
    checksum = rc4(hashlib.md5(seal_key + sequence).digest(), checksum)
    return (struct.pack("<I", 1) + checksum + sequence).hex().upper()


def ntlm_seeds():
    """Mode byte (0 AUTHENTICATE, 1 CHALLENGE, 2 SIP) + payload; see fuzz_targets/ntlm.rs."""
    # The target's mode 0 checks answers against Challenge::new([0; 8], names, 0) and the
    # NT hash of "pw"; mode 2 uses the keys of exported session key [2; 16].
    challenge = ntlm_challenge(b"\0" * 8, 0)
    answer = ntlm_respond(challenge, "alice", "EXAMPLE", "W", "pw", b"\x01" * 8, b"\x02" * 16)
    exported = b"\x02" * 16
    sig_200 = "<NTLM><0a1b2c3d><1><%s><%s><%s><3><REGISTER><sip:alice@example.test><48213390><sip:alice@example.test><srv1><sip:alice@example.test><tel:+15550100><3600><200>" % (
        SIPAE_REALM, SIPAE_TARGET, CALL_REG.split(": ", 1)[1])
    ok_signed = message(
        "SIP/2.0 200 OK",
        [
            VIA_BRANCH, FROM, TO_SELF + ";tag=srv1", CALL_REG, "CSeq: 3 REGISTER", "Expires: 3600",
            "P-Asserted-Identity: <sip:alice@example.test>, <tel:+15550100>",
            'Authentication-Info: NTLM rspauth="%s", srand="0a1b2c3d", snum="1", opaque="op1", qop="auth", targetname="%s", realm="%s"'
            % (sipae_sign(exported, "server-to-client", sig_200), SIPAE_TARGET, SIPAE_REALM),
        ],
    )
    sig_info = "<NTLM><1234abcd><1><%s><%s><%s><2><INFO><sip:alice@example.test><48213390><sip:ocschat@example.test><9c1f52e0><><><>" % (
        SIPAE_REALM, SIPAE_TARGET, CALL_DLG.split(": ", 1)[1])
    info_signed = message(
        "INFO sip:ocschat@example.test:5061;transport=tls SIP/2.0",
        [
            VIA, FROM, TO_CHAT_TAG, "Max-Forwards: 70", "CSeq: 2 INFO", UA, CALL_DLG,
            'Authorization: NTLM qop="auth", opaque="op1", realm="%s", targetname="%s", crand="1234abcd", cnum="1", response="%s"'
            % (SIPAE_REALM, SIPAE_TARGET, sipae_sign(exported, "client-to-server", sig_info)),
            "Content-Type: text/plain",
        ],
        REQURI,
    )
    register_ntlm = message(
        "REGISTER sip:example.test SIP/2.0",
        [
            VIA_BRANCH, FROM, TO_SELF, "Max-Forwards: 70", "CSeq: 3 REGISTER", CALL_REG,
            'Authorization: NTLM qop="auth", opaque="op1", realm="%s", targetname="%s", gssapi-data="%s", version=4'
            % (SIPAE_REALM, SIPAE_TARGET, base64.b64encode(answer).decode()),
            "Contact: <sip:10.0.0.5:53412;transport=tls>",
        ],
    )
    unauthorized_ntlm = message(
        "SIP/2.0 401 Unauthorized",
        [
            VIA_BRANCH, FROM, TO_SELF + ";tag=srv4", CALL_REG, "CSeq: 2 REGISTER",
            'WWW-Authenticate: NTLM opaque="op1", gssapi-data="%s", targetname="%s", realm="%s", version=4'
            % (base64.b64encode(challenge).decode(), SIPAE_TARGET, SIPAE_REALM),
        ],
    )
    return {
        "authenticate-spec": b"\x00" + NTLM_SPEC_AUTHENTICATE,
        "authenticate-alice": b"\x00" + answer,
        "challenge": b"\x01" + challenge,
        "sip-200-signed": b"\x02" + ok_signed,
        "sip-info-signed-twice": b"\x02" + info_signed + info_signed,
        "sip-register-gssapi": b"\x02" + register_ntlm,
        "sip-401-gssapi": b"\x02" + unauthorized_ntlm,
    }


# Session target: 10 control bytes (see fuzz_targets/session.rs), then a stream in the chat
# dialog the target sets up (Call-ID `fuzz`, From tag `fuzz`, the INVITE was CSeq 1).
SESSION_ROOM = "00000000-0000-4000-8000-00000000f022"


def session_request(method, cseq, body="", extra=(), to="<sip:ocschat@example.test>",
                    uri="sip:ocschat@example.test", call_id="fuzz"):
    headers = [
        "Via: SIP/2.0/TLS 127.0.0.1:5555", "Max-Forwards: 70",
        "From: <sip:alice@example.test>;tag=fuzz", f"To: {to}", f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}", *extra,
    ]
    if body:
        headers.append("Content-Type: text/plain")
    return message(f"{method} {uri} SIP/2.0", headers, body)


def session_response(code, reason, cseq, method):
    """alice's answer to perch's own request `cseq` in the chat dialog."""
    return message(
        f"SIP/2.0 {code} {reason}",
        [
            "Via: SIP/2.0/TLS 127.0.0.1:5061", "From: <sip:ocschat@example.test>;tag=x",
            "To: <sip:alice@example.test>;tag=fuzz", "Call-ID: fuzz", f"CSeq: {cseq} {method}",
        ],
    )


def session_seeds():
    """Control bytes + stream; every room of the transcripts is the target's Lobby."""
    bodies = []
    for path in sorted((REPO / "conformance" / "transcripts").glob("*.txt")):
        for line in path.read_text().splitlines():
            m = re.match(r"^\w+ > INFO (.*)$", line)
            if m:
                body = re.sub(r"\{[A-Z][A-Za-z]*\.id\}", SESSION_ROOM, m.group(1))
                body = re.sub(r"\{[A-Z][A-Za-z]*\}", f"ma-chan://{DOMAIN}/{SESSION_ROOM}", body)
                bodies.append(body)
    ack = session_request("ACK", 1)
    join_body = next(b for b in bodies if "cmd:join" in b)
    join = session_request("INFO", 2, join_body)

    def control(mode, revoke=0, reads=(255, 255, 255, 255), steps=(0, 1, 2, 3)):
        return bytes(reads) + bytes(steps) + bytes([mode, revoke])

    streams = {}
    for body in dict.fromkeys(bodies):
        kind = re.search(r'<(?:cmd id="cmd:(\w+)"|(grpchat))', body)
        name = kind.group(1) or "grpchat"
        n = sum(1 for k in streams if k.rsplit("-", 1)[0] == name)
        first = join if name in ("grpchat", "bccontext", "part") else b""
        cseq = 3 if first else 2
        streams[f"{name}-{n}"] = ack + first + session_request("INFO", cseq, body)
    streams["requests"] = b"".join([
        ack,
        session_request("OPTIONS", 2, uri="sip:example.test"),
        session_request("SUBSCRIBE", 3, uri="sip:alice@example.test", to="<sip:alice@example.test>",
                        extra=("Event: vnd-microsoft-provisioning-v2", "Expires: 0")),
        session_request("UPDATE", 4, extra=("Session-Expires: 1800",)),
        session_request("CANCEL", 1),
        session_request("SERVICE", 5, uri="sip:example.test"),
        session_request("INVITE", 6, call_id="fuzz-2", extra=("Contact: <sip:alice@example.test;gruu>",)),
        session_request("BYE", 7),
        b"\r\n\r\n",
    ])
    streams["register-refresh"] = ack + session_request(
        "REGISTER", 4, uri="sip:example.test", to="<sip:alice@example.test>",
        extra=("Contact: <sip:127.0.0.1:5555;transport=tls>",))
    streams["unregister"] = join + session_request(
        "REGISTER", 4, uri="sip:example.test", to="<sip:alice@example.test>",
        extra=("Expires: 0",))
    # perch's INFOs in the dialog are CSeq 1, 2, ...: answer them, then drop the dialog.
    streams["answers"] = b"".join([
        ack, session_request("INFO", 2, next(b for b in bodies if "cmd:requri" in b)),
        session_response(200, "OK", 1, "INFO"), session_request("INFO", 3, join_body),
        session_response(481, "Call Leg/Transaction Does Not Exist", 2, "INFO"),
    ])

    seeds = {}
    for name, stream in streams.items():
        seeds[f"trust-{name}"] = control(0) + stream
        seeds[f"ntlm-signed-{name}"] = control(3) + stream
    seeds["ntlm-unsigned-join"] = control(1) + ack + join
    seeds["trust-revoke-direct-first"] = control(0, 1) + ack + join
    seeds["ntlm-signed-revoke-registrar-second"] = control(3, 4, reads=(60, 60, 60, 60)) + ack + join
    seeds["ntlm-signed-revoke-after-end"] = control(3, 255) + ack + join
    seeds["trust-slow-clock"] = control(0, 0, reads=(0, 3, 10, 40), steps=(255, 200, 0, 250)) + ack + join
    return seeds


XMPP_HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='example.test' version='1.0' xml:lang='en'>"
)


def xmpp_seeds():
    """`xmpp_stream` seeds: 2 control bytes (read-size seed, limits; see the target) and a
    client's stream: a c2s sign-in (STARTTLS, restart, SASL PLAIN, restart, bind), MUC
    presence and groupchat messages, keep-alives, namespaces, and each refused construct."""
    tls = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>"
    bind = ("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            "<resource>perch</resource></bind></iq>")
    join = ("<presence to='lobby@chat.example.test/alice'><x xmlns='http://jabber.org/protocol/muc'>"
            "<history maxstanzas='20'/></x></presence>")
    post = ("<message to='lobby@chat.example.test' type='groupchat' id='m1'>"
            "<body>a &amp; b &#x1F600; <![CDATA[<not markup>]]></body></message>")
    decl = "<?xml version='1.0'?>"
    streams = {
        "signin": decl + XMPP_HEADER + tls + decl + XMPP_HEADER + auth + XMPP_HEADER + bind,
        "muc": XMPP_HEADER + join + " \n " + post + "\n</stream:stream>",
        "namespaces": XMPP_HEADER + "<stream:error><not-well-formed "
        "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error><iq><p:q xmlns:p='urn:p' "
        "p:a='1' xml:lang='de'><p:r/><s xmlns=''/></p:q></iq><r xmlns='urn:xmpp:sm:3'/>",
        "comment": XMPP_HEADER + "<message><!-- x --></message>",
        "pi": XMPP_HEADER + "<?foo bar?>",
        "doctype": "<!DOCTYPE stream>" + XMPP_HEADER,
        "entity": XMPP_HEADER + "<message>&lol;</message>",
        "no-stream": "<message xmlns='jabber:client'><body>x</body></message>",
        "wrong-namespace": XMPP_HEADER.replace("jabber:client", "jabber:server"),
        "deep": XMPP_HEADER + "<a>" * 20,
    }
    seeds = {}
    for name, text in streams.items():
        seeds[name + "-one-read"] = b"\x00\x00" + text.encode()
        seeds[name + "-small-reads"] = b"\x07\x00" + text.encode()
    seeds["muc-small-limits"] = b"\x03\x21" + streams["muc"].encode()
    return seeds


C2S_ROOM = "00000000-0000-4000-8000-0000000c25c2@conference.example.test"


def xmpp_c2s_seeds():
    """`xmpp_c2s` seeds: 2 control bytes (start mode, read-size seed; see the target), then
    a client's stream with 0xFF where a read ends. Mode 0: after the target's sign-in of
    alice (PLAIN, bound as `alice@example.test/fuzz`): MUC join with history, groupchat
    messages, MAM queries, disco of the server, the service and the room, muc#admin, other
    iqs, leaving and closing. Mode 2 (direct TLS) and 3 (plain TCP, STARTTLS): the sign-in
    itself, and its refusals."""
    room = C2S_ROOM
    muc = "http://jabber.org/protocol/muc"
    join = (f"<presence to='{room}/alice' id='j1'><x xmlns='{muc}'>"
            "<history maxstanzas='5'/></x></presence>")
    post = (f"<message to='{room}' type='groupchat' id='m1'>"
            "<body>hello &amp; welcome &#x1F600;</body></message>")
    post2 = (f"<message to='{room}' type='groupchat' id='m2'><subject>topic</subject>"
             "<body>second</body><x xmlns='urn:example:extra'><y a='1'/></x></message>")
    mam = (f"<iq type='set' id='q1' to='{room}'><query xmlns='urn:xmpp:mam:2' queryid='f1'>"
           "<set xmlns='http://jabber.org/protocol/rsm'><max>5</max><before/></set>"
           "</query></iq>")
    mam_search = (f"<iq type='set' id='q2' to='{room}'><query xmlns='urn:xmpp:mam:2'>"
                  "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
                  "<value>urn:xmpp:mam:2</value></field>"
                  "<field var='{urn:xmpp:fulltext:0}fulltext'><value>hello</value></field></x>"
                  "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><after>1</after></set>"
                  "</query></iq>")
    mam_form = f"<iq type='get' id='q3' to='{room}'><query xmlns='urn:xmpp:mam:2'/></iq>"
    info = "http://jabber.org/protocol/disco#info"
    items = "http://jabber.org/protocol/disco#items"
    disco = "".join([
        f"<iq type='get' id='d1' to='example.test'><query xmlns='{info}'/></iq>",
        f"<iq type='get' id='d2'><query xmlns='{items}'/></iq>",
        f"<iq type='get' id='d3' to='conference.example.test'><query xmlns='{info}'/></iq>",
        f"<iq type='get' id='d4' to='conference.example.test'><query xmlns='{items}'/></iq>",
        f"<iq type='get' id='d5' to='{room}'><query xmlns='{info}'/></iq>",
        f"<iq type='get' id='d6' to='{room}'><query xmlns='{items}'/></iq>",
        f"<iq type='get' id='d7' to='{room}/alice'><query xmlns='{info}'/></iq>",
        "<iq type='get' id='d8' to='nowhere@conference.example.test'>"
        f"<query xmlns='{info}'/></iq>",
    ])
    others = "".join([
        "<iq type='get' id='o1'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<iq type='get' id='o2'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq type='set' id='o3'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
        "<iq type='get' id='o4' to='alice@example.test'><vCard xmlns='vcard-temp'/></iq>",
        "<iq type='get' id='o5'/>",
        "<iq type='result' id='o6'/>",
        "<iq type='get' id='o7' to='@@'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<message to='bob@example.test' type='chat'><body>hi</body></message>",
        "<presence><show>away</show></presence>",
        "<presence to='bob@example.test' type='subscribe'/>",
    ])
    admin = "http://jabber.org/protocol/muc#admin"
    admins = "".join([
        f"<iq type='get' id='a1' to='{room}'><query xmlns='{admin}'>"
        "<item affiliation='member'/></query></iq>",
        f"<iq type='set' id='a2' to='{room}'><query xmlns='{admin}'>"
        "<item affiliation='member' jid='bob@example.test'/></query></iq>",
        f"<iq type='set' id='a3' to='{room}'><query xmlns='{admin}'>"
        "<item affiliation='outcast' jid='bob@example.test'/></query></iq>",
        f"<iq type='get' id='a4' to='{room}'><query xmlns='{muc}#owner'/></iq>",
    ])
    leave = f"<presence to='{room}/alice' type='unavailable'/>"
    nick = f"<presence to='{room}/someone-else'><x xmlns='{muc}'/></presence>"
    private = (f"<message to='{room}/bob' type='chat'><body>psst</body></message>"
               f"<message to='{room}' type='groupchat'><body>not joined</body></message>")
    close = "</stream:stream>"
    signed_in = {
        "join": join,
        "join-post": join + post + post2,
        "join-post-mam": join + post + "\xff" + mam + mam_search + mam_form,
        "mam-not-joined": mam + mam_form,
        "disco": disco,
        "other-iqs": others,
        "admin": join + admins,
        "join-twice-nick-leave": join + "\xff" + nick + join + "\xff" + leave + post,
        "private-and-not-joined": private + join + private,
        "close": join + post + close,
        "stream-error": join + "<message><unclosed></message>" + post,
        "restart-after-bind": XMPP_HEADER + join,
        # XEP-0198: resumption on, acknowledgements in and out of range; the target parks
        # the session when the input ends without a close.
        "sm-resumable": "<enable xmlns='urn:xmpp:sm:3' resume='true' max='5'/>" + join + post
        + "<r xmlns='urn:xmpp:sm:3'/>\xff<a xmlns='urn:xmpp:sm:3' h='1'/>" + post2,
        "sm-ack-too-high": "<enable xmlns='urn:xmpp:sm:3' resume='1'/>" + join
        + "<a xmlns='urn:xmpp:sm:3' h='99'/>",
        "sm-enable-twice-bad-ack": "<enable xmlns='urn:xmpp:sm:3'/><enable xmlns='urn:xmpp:sm:3'/>"
        + "<a xmlns='urn:xmpp:sm:3' h='x'/>",
    }
    decl = "<?xml version='1.0'?>"
    header = decl + XMPP_HEADER
    tls = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    sasl = "urn:ietf:params:xml:ns:xmpp-sasl"
    plain = base64.b64encode(b"\0alice@example.test\0alice-pw").decode()
    wrong = base64.b64encode(b"\0alice@example.test\0wrong").decode()
    bob = base64.b64encode(b"bob@example.test\0bob\0bob-pw").decode()
    auth = f"<auth xmlns='{sasl}' mechanism='PLAIN'>{plain}</auth>"
    bind = ("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            "<resource>perch</resource></bind></iq>")
    raw = {
        "tls-signin": header + auth + "\xff" + header + bind + join + post,
        "tls-wrong-password": header + f"<auth xmlns='{sasl}' mechanism='PLAIN'>{wrong}</auth>"
        + "\xff" + f"<auth xmlns='{sasl}' mechanism='PLAIN'>=</auth>" + "\xff"
        + f"<auth xmlns='{sasl}' mechanism='X-UNKNOWN'/>",
        "tls-plain-authzid": header + f"<auth xmlns='{sasl}' mechanism='PLAIN'>{bob}</auth>"
        + "\xff" + header + bind,
        "tls-scram-first": header + f"<auth xmlns='{sasl}' mechanism='SCRAM-SHA-256'>"
        + base64.b64encode(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL").decode() + "</auth>"
        + "\xff" + f"<response xmlns='{sasl}'>"
        + base64.b64encode(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=AAAA").decode()
        + "</response>" + f"<abort xmlns='{sasl}'/>",
        "tls-stanza-before-auth": header + join,
        "tls-host-unknown": XMPP_HEADER.replace("example.test", "elsewhere.test"),
        "tls-no-header": join,
        "tls-bind-twice": header + auth + "\xff" + header + bind + bind + auth,
        "tcp-starttls-signin": header + tls + "\xff" + header + auth + "\xff" + header + bind
        + join + post,
        "tcp-auth-before-tls": header + auth,
        "tcp-starttls-twice": header + tls + "\xff" + header + tls,
        "tls-resume-unknown": header + auth + "\xff" + header
        + "<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/><resume xmlns='urn:xmpp:sm:3'/>"
        + bind + "<enable xmlns='urn:xmpp:sm:3' resume='true'/>" + join,
    }
    seeds = {}
    for name, text in signed_in.items():
        seeds["signed-in-" + name] = b"\x00\x00" + text.encode("latin-1")
    for name in ("join-post-mam", "admin"):
        seeds["signed-in-" + name + "-small-reads"] = b"\x00\x07" + signed_in[name].encode("latin-1")
    for name, text in raw.items():
        mode = b"\x03" if name.startswith("tcp-") else b"\x02"
        seeds[name] = mode + b"\x00" + text.encode("latin-1")
    seeds["tcp-starttls-signin-small-reads"] = b"\x03\x07" + raw["tcp-starttls-signin"].encode("latin-1")
    return seeds


def write(target, name, data):
    assert len(data) < 4096, (target, name, len(data))
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def main():
    # Regression inputs (`regress-*`, from findings) are kept; every other seed is rewritten.
    if CORPUS.exists():
        for path in CORPUS.glob("*/*"):
            if path.is_file() and not path.name.startswith("regress-"):
                path.unlink()
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

    for name, data in ntlm_seeds().items():
        write("ntlm", name, data)

    for name, data in session_seeds().items():
        write("session", name, data)

    for name, data in xmpp_seeds().items():
        write("xmpp_stream", name, data)

    for name, data in xmpp_c2s_seeds().items():
        write("xmpp_c2s", name, data)


if __name__ == "__main__":
    main()
