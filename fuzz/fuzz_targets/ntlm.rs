//! NTLM (MS-NLMP) and MS-SIPAE: what perch reads from a client during NTLM sign-in and on
//! every signed message afterwards.
//!
//! Input layout: 1 mode byte, then the payload; the mode is `byte % 3`:
//! - 0, an AUTHENTICATE: `ntlm::Authenticate::parse`; if it parses, `encode` and parse
//!   again give an equal value, and `Challenge::verify` of it (challenge
//!   `Challenge::new([0; 8], names, 0)`, the NT hash of `pw`) returns;
//! - 1, a CHALLENGE: `ntlm::ReceivedChallenge::parse`; if it parses, `ntlm::respond` to it
//!   (the client half perch-load and the tests use), and if that answers, the answer's
//!   `encode` parses back to the same value;
//! - 2, a SIP byte stream: `framer::decode` with default limits, `Message::parse` on every
//!   message frame, then on each message `sipae::AuthFields::parse` (with `get`/`is_ntlm`)
//!   on every header value, `ntlm_authorization`, `SignedParts::of(..).buffer(..)`, and
//!   `Association::verify` by a server-role and by a client-role association, one of each
//!   per input, so numbers accepted from earlier messages in the stream count. Both come
//!   from a real handshake (the one in sipae.rs's tests: challenge [5; 8] for alice in
//!   EXAMPLE, password `pw`, client challenge [1; 8], exported session key [2; 16]), so
//!   seeds signed with those keys verify. When a message verifies, verifying it again
//!   must give `Replayed`.
//!
//! Checks: no panic, and the assertions above.
#![no_main]

use std::sync::LazyLock;
use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use perch::core::credentials::NtHash;
use perch::lync::session::ntlm::{
    self, Authenticate, Challenge, ClientEntropy, ClientIdentity, ReceivedChallenge, TargetNames,
};
use perch::lync::session::sipae::{
    self, Association, AuthFields, Role, SignatureError, SignedParts,
};
use perch::lync::sip::Message;
use perch::lync::sip::framer::{self, Frame, FrameLimits};

fn names() -> TargetNames {
    TargetNames {
        netbios_domain: "EXAMPLE".into(),
        netbios_computer: "CHAT".into(),
        dns_domain: "example.test".into(),
        dns_computer: "chat.example.test".into(),
    }
}

static HASH: LazyLock<NtHash> = LazyLock::new(|| NtHash::derive("pw"));
static CHALLENGE: LazyLock<Challenge> = LazyLock::new(|| Challenge::new([0; 8], &names(), 0));
const ENTROPY: ClientEntropy = ClientEntropy {
    client_challenge: [1; 8],
    exported_session_key: [2; 16],
    filetime: 0,
};

/// (server, client) associations from the handshake of sipae.rs's tests.
static PAIR: LazyLock<(Association, Association)> = LazyLock::new(|| {
    let challenge = Challenge::new([5; 8], &names(), ntlm::filetime(1_800_000_000));
    let identity = ClientIdentity {
        user: "alice",
        domain: "EXAMPLE",
        workstation: "W",
        nt_hash: &HASH,
    };
    let received = ReceivedChallenge::parse(&challenge.message).expect("our challenge parses");
    let (answer, client_keys) =
        ntlm::respond(&received, &identity, &ENTROPY).expect("our challenge is answered");
    let server_keys = challenge
        .verify(&answer, &HASH)
        .expect("our answer verifies");
    let now = Instant::now();
    let target = "chat.example.test".to_owned();
    (
        Association::new(Role::Server, server_keys, "op1".into(), target.clone(), now),
        Association::new(Role::Client, client_keys, "op1".into(), target, now),
    )
});

fn authenticate(payload: &[u8]) {
    let Ok(parsed) = Authenticate::parse(payload) else {
        return;
    };
    let encoded = parsed.encode();
    match Authenticate::parse(&encoded) {
        Ok(again) => assert_eq!(again, parsed, "encode → parse changed the AUTHENTICATE"),
        Err(error) => panic!("perch's encoding of {parsed:?} does not parse: {error}"),
    }
    let _ = CHALLENGE.verify(&parsed, &HASH);
}

fn challenge(payload: &[u8]) {
    let Ok(received) = ReceivedChallenge::parse(payload) else {
        return;
    };
    let identity = ClientIdentity {
        user: "alice",
        domain: "EXAMPLE",
        workstation: "W",
        nt_hash: &HASH,
    };
    if let Ok((answer, _keys)) = ntlm::respond(&received, &identity, &ENTROPY) {
        match Authenticate::parse(&answer.encode()) {
            Ok(again) => assert_eq!(again, answer, "respond → encode → parse changed the answer"),
            Err(error) => panic!("the answer to {received:?} does not parse: {error}"),
        }
    }
}

fn verify(association: &mut Association, message: &Message) {
    if association.verify(message).is_ok() {
        assert_eq!(
            association.verify(message),
            Err(SignatureError::Replayed),
            "a verified message verified twice"
        );
    }
}

fn sip(payload: &[u8]) {
    let (mut server, mut client) = PAIR.clone();
    let limits = FrameLimits::default();
    let mut buf = BytesMut::from(payload);
    loop {
        match framer::decode(&mut buf, &limits) {
            Ok(Some(Frame::Message { head, body })) => {
                let Ok(message) = Message::parse(&head, body) else {
                    continue;
                };
                for header in message.headers.iter() {
                    if let Some(fields) = AuthFields::parse(&header.value) {
                        let _ = fields.is_ntlm();
                        for name in [
                            "gssapi-data",
                            "opaque",
                            "cnum",
                            "snum",
                            "response",
                            "rspauth",
                        ] {
                            let _ = fields.get(name);
                        }
                    }
                }
                let _ = sipae::ntlm_authorization(&message);
                let _ = SignedParts::of(&message).buffer("0a1b2c3d", "1", sipae::REALM, "t");
                verify(&mut server, &message);
                verify(&mut client, &message);
            }
            Ok(Some(Frame::Ping)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => authenticate(payload),
        1 => challenge(payload),
        _ => sip(payload),
    }
});
