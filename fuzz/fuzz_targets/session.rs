//! A SIP `Session` signed in by trust or by NTLM with MS-SIPAE signing, fed arbitrary bytes
//! as the transport feeds it.
//!
//! Input layout: 10 control bytes, then the stream.
//! - read `k` is the next `1 + r[k % 4]` bytes of the stream (1..=256), `r` = bytes 0..4;
//! - after it the clock moves on by `t[k % 4]²` ms, `t` = bytes 4..8 (0 to 65 s: small
//!   steps mostly, and large enough ones for stored responses to expire, our own INFOs to
//!   time out, which ends the dialog as an unanswered INFO does, and over many reads the
//!   NTLM association to expire);
//! - byte 8, the sign-in: bit 0 clear, by trust; set, by NTLM (below). Bit 1 (NTLM only):
//!   every message of the stream that frames and parses is signed with the client's
//!   association before it is fed (the stream is framed with the session's limits, each
//!   such message gets the client's `Authorization` and is encoded again; the other bytes
//!   stay as they are), so signed requests and responses reach the dialog, registrar and
//!   endpoint; clear, the stream goes in unsigned and every message but a REGISTER is
//!   refused for its missing signature;
//! - byte 9, a revocation (`Outbound::Revoke`, what a password change, disabling or removal
//!   sends): 0, none; otherwise `v - 1 = 2k + route`, delivered before read `k` (0..=127),
//!   or after the last read if the stream ends first; route 0 hands it to
//!   `Session::deliver`, route 1 goes the way the server does it, `Shared::revoke` (the
//!   registrar's bindings, the outbox, the connection's mailbox).
//!
//! Sign-in by trust: from 127.0.0.1 (a trusted network), REGISTER as alice and INVITE the
//! chat URI, each answered 200. Sign-in by NTLM: from 192.0.2.7 (untrusted), SIPE's three
//! REGISTERs through the session itself: none → 401 offering NTLM; `NTLM … gssapi-data=""`
//! → 401 with `opaque` and the CHALLENGE; the AUTHENTICATE `ntlm::respond` makes for alice
//! in EXAMPLE with her password, in a REGISTER signed by a client-role
//! `sipae::Association` on the keys it returns → 200, whose `Authentication-Info` must
//! verify on the client side; then a signed INVITE → signed 200.
//!
//! Both: Call-ID `fuzz`, From `<sip:alice@example.test>;tag=fuzz`, so a request with those
//! (and a To without a tag, or with the server's) is in the chat dialog and its INFO bodies
//! reach the real XCCOS endpoint, hub and a SQLite store in a temporary directory
//! (`perch-fuzz-session-<pid>`), seeded with alice (password `pw`, so she has an NT hash)
//! and the open room `ma-chan://example.test/00000000-0000-4000-8000-00000000f022`. The
//! server is `app::server::assemble` with the default config (NTLM on, target name
//! `example.test`) but for the trusted network. The clock is virtual: each input starts a
//! day after the previous one ended, so state shared by all sessions (per-user request
//! meter, challenge limits, failure throttle, nonces) does not carry from one input into
//! the next.
//!
//! Each read goes through `framer::decode` (the session's own limits) and
//! `Session::handle_frame` until `Ok(None)`; a framing error goes to `handle_frame_error`
//! and ends the input, as does an `Output::Close`. Deliveries the hub queued for the
//! connection are handed to `Session::deliver`, then `tick` runs. Deferred work (a post
//! waiting for its commit) is dropped, never awaited: this target has no runtime. At the
//! end `closed()` leaves every room.
//!
//! Checks: no panic; every `Output::Send` is non-empty; the sign-ins above succeed; with
//! NTLM, every message perch writes that parses and carries an NTLM `Authentication-Info`
//! verifies under the client's association (`Replayed` is accepted: a stored response sent
//! again for a retransmitted request); a delivered `Revoke` closes the connection and
//! leaves it without registration, dialogs or registrar binding; after `closed()` the
//! registrar holds no binding for the connection and alice no dialog slot, and once the
//! session is dropped no retransmission budget is in use.
//!
//! `PERCH_FUZZ_TRACE=1` prints every message perch writes after the sign-in to stderr.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use perch::app::config::Config;
use perch::app::server;
use perch::core::Snapshot;
use perch::core::credentials::NtHash;
use perch::core::manage::{CategoryChange, ListEdit};
use perch::core::model::{Principal, Privacy, Room};
use perch::core::ports::{Store, wait};
use perch::core::service;
use perch::lync::session::ntlm::{self, ClientEntropy, ClientIdentity, ReceivedChallenge};
use perch::lync::session::sipae::{
    self, Association, AuthFields, Role, SignatureError, SignedParts,
};
use perch::lync::session::{ConnectionInfo, Outbound, Output, Session, Shared, Transport};
use perch::lync::sip::framer::{self, Frame};
use perch::lync::sip::request::RequestHead;
use perch::lync::sip::{FrameLimits, Message, StartLine};
use perch::store::SqliteStore;

const DOMAIN: &str = "example.test";
const ALICE: &str = "alice@example.test";
const PASSWORD: &str = "pw";
const CHAT: &str = "sip:ocschat@example.test";
const ROOM_UID: &str = "00000000-0000-4000-8000-00000000f022";
/// An address outside the trusted network (TEST-NET-1).
const UNTRUSTED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

struct Rig {
    shared: Arc<Shared>,
    /// Kept for the life of the process (its writer thread commits the posts).
    _store: Arc<dyn Store>,
    /// The virtual clock: where the last input left it.
    clock: Mutex<Instant>,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("perch-fuzz-session-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).unwrap());
        service::add_user(store.as_ref(), ALICE, None, Some(PASSWORD), true).unwrap();
        let snapshot = || Snapshot::from_model(store.load_model().unwrap());
        let general = CategoryChange {
            name: Some("General".into()),
            allowed: vec![ListEdit::Add(vec![Principal::Domain(DOMAIN.into())])],
            ..CategoryChange::default()
        };
        let general = service::save_category(store.as_ref(), &snapshot(), None, general)
            .unwrap()
            .category;
        // A fixed uid, so the seeds' room URI names it in every run.
        let lobby = Room {
            privacy: Privacy::Open,
            ..Room::new(ROOM_UID, "Lobby", general.id)
        };
        wait(store.save_room(lobby)).unwrap();
        let mut config = Config::default();
        config.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
        let shared = server::assemble(&config, store.clone()).unwrap().lync;
        assert!(shared.settings.ntlm.is_some(), "NTLM is offered by default");
        Rig {
            shared,
            _store: store,
            clock: Mutex::new(Instant::now()),
        }
    })
}

fn request(
    method: &str,
    uri: &str,
    to: &str,
    cseq: u32,
    extra: &[(&str, &str)],
    body: &str,
) -> Vec<u8> {
    RequestHead {
        method,
        uri,
        via: "SIP/2.0/TLS 127.0.0.1:5555",
        from: "<sip:alice@example.test>;tag=fuzz",
        to,
        call_id: "fuzz",
        cseq,
    }
    .encode(extra, body.as_bytes())
    .to_vec()
}

fn register(cseq: u32, authorization: Option<&str>) -> Vec<u8> {
    // SIPE's Supported header: what gets it an NTLM offer.
    let mut extra = vec![
        ("Contact", "<sip:127.0.0.1:5555;transport=tls>"),
        ("Supported", "gruu-10, adhoclist, msrtc-event-categories"),
    ];
    if let Some(value) = authorization {
        extra.push(("Authorization", value));
    }
    request(
        "REGISTER",
        "sip:example.test",
        "<sip:alice@example.test>",
        cseq,
        &extra,
        "",
    )
}

fn invite() -> Vec<u8> {
    request(
        "INVITE",
        CHAT,
        &format!("<{CHAT}>"),
        1,
        &[
            ("Contact", "<sip:alice@example.test;gruu>"),
            ("Content-Type", "application/sdp"),
        ],
        "v=0\r\n",
    )
}

/// Frames and parses bytes perch wrote (generous limits: a response copies the request's
/// headers and adds its own).
fn parse_output(bytes: &[u8]) -> Option<Message> {
    let limits = FrameLimits {
        max_header_bytes: 1 << 20,
        max_headers: 100_000,
        max_body_bytes: 1 << 24,
    };
    let mut buffer = BytesMut::from(bytes);
    match framer::decode(&mut buffer, &limits) {
        Ok(Some(Frame::Message { head, body })) => Message::parse(&head, body).ok(),
        _ => None,
    }
}

/// Parses a message the client sends (a whole frame).
fn parse_request(bytes: &[u8]) -> Message {
    parse_output(bytes).expect("the target's own request parses")
}

/// Signs a whole request with the client's association.
fn signed(bytes: &[u8], client: &mut Association) -> Vec<u8> {
    let mut message = parse_request(bytes);
    let (name, value) = client.sign(&SignedParts::of(&message));
    message.headers.push(name, value);
    message.encode().to_vec()
}

/// Signs every message of `stream` that frames (with the session's `limits`) and parses;
/// everything else is copied as it is.
fn sign_stream(stream: &[u8], limits: &FrameLimits, client: &mut Association) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len() + 512);
    let mut buffer = BytesMut::from(stream);
    loop {
        let offset = stream.len() - buffer.len();
        match framer::decode(&mut buffer, limits) {
            Ok(Some(frame)) => {
                let end = stream.len() - buffer.len();
                let message = match frame {
                    Frame::Message { head, body } => Message::parse(&head, body).ok(),
                    Frame::Ping => None,
                };
                match message {
                    Some(mut message) => {
                        let (name, value) = client.sign(&SignedParts::of(&message));
                        message.headers.push(name, value);
                        out.extend_from_slice(&message.encode());
                    }
                    None => out.extend_from_slice(&stream[offset..end]),
                }
            }
            Ok(None) | Err(_) => {
                out.extend_from_slice(&stream[offset..]);
                return out;
            }
        }
    }
}

/// Feeds one read; false once the connection would be closed.
fn feed(session: &mut Session, buffer: &mut BytesMut, bytes: &[u8], now: Instant) -> bool {
    buffer.extend_from_slice(bytes);
    let limits = session.frame_limits();
    loop {
        match framer::decode(buffer, &limits) {
            Ok(Some(frame)) => session.handle_frame(frame, now),
            Ok(None) => return true,
            Err(error) => {
                session.handle_frame_error(&error);
                return false;
            }
        }
    }
}

/// `PERCH_FUZZ_TRACE=1`: every message perch writes goes to stderr as well (to see what
/// an input reaches).
static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("PERCH_FUZZ_TRACE").is_some());

/// Takes the outputs and checks them; false if one of them closes the connection.
fn drain(session: &mut Session, client: &mut Option<Association>) -> bool {
    let mut open = true;
    for output in session.take_outputs() {
        match output {
            Output::Send(bytes) => {
                assert!(!bytes.is_empty());
                if *TRACE {
                    eprintln!("perch >\n{}", String::from_utf8_lossy(&bytes));
                }
                if let Some(client) = client.as_mut() {
                    check_signed(&bytes, client);
                }
            }
            Output::Close => {
                if *TRACE {
                    eprintln!("perch: close");
                }
                open = false;
            }
            Output::Await(_) => {
                if *TRACE {
                    eprintln!("perch: deferred");
                }
            }
        }
    }
    open
}

/// A message perch signed verifies on the client's side.
fn check_signed(bytes: &[u8], client: &mut Association) {
    let Some(message) = parse_output(bytes) else {
        return;
    };
    let signed = message
        .headers
        .get_all("Authentication-Info")
        .filter_map(AuthFields::parse)
        .any(|fields| fields.is_ntlm());
    if !signed {
        return;
    }
    match client.verify(&message) {
        Ok(()) | Err(SignatureError::Replayed) => {}
        Err(error) => panic!(
            "perch's signature does not verify ({error}):\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// The single response a prelude request got.
fn answered(session: &mut Session) -> Message {
    let outputs = session.take_outputs();
    assert_eq!(outputs.len(), 1);
    let Output::Send(bytes) = &outputs[0] else {
        panic!("prelude request not answered");
    };
    let message = parse_output(bytes).expect("prelude answer frames and parses");
    assert!(
        matches!(message.start, StartLine::Response { .. }),
        "prelude answer is not a response"
    );
    message
}

fn status(message: &Message) -> u16 {
    match message.start {
        StartLine::Response { code, .. } => code,
        StartLine::Request { .. } => 0,
    }
}

/// The prelude request `bytes` must be answered `code`; returns the answer.
fn expect(
    session: &mut Session,
    buffer: &mut BytesMut,
    bytes: &[u8],
    now: Instant,
    code: u16,
) -> Message {
    assert!(feed(session, buffer, bytes, now));
    let reply = answered(session);
    assert_eq!(
        status(&reply),
        code,
        "{}",
        String::from_utf8_lossy(&reply.encode())
    );
    reply
}

fn ntlm_offer(reply: &Message, name: &str) -> Option<String> {
    reply
        .headers
        .get_all("WWW-Authenticate")
        .filter_map(AuthFields::parse)
        .find(AuthFields::is_ntlm)
        .and_then(|fields| fields.get(name).map(str::to_owned))
}

/// SIPE's sign-in: three REGISTERs, the last carrying the AUTHENTICATE and signed; then
/// a signed INVITE. Returns the client's association.
fn sign_in_ntlm(session: &mut Session, buffer: &mut BytesMut, now: Instant) -> Association {
    let first = expect(session, buffer, &register(1, None), now, 401);
    let target = ntlm_offer(&first, "targetname").expect("NTLM is offered");
    let empty = format!(
        "NTLM qop=\"auth\", realm=\"{}\", targetname=\"{target}\", gssapi-data=\"\", version=4",
        sipae::REALM
    );
    let second = expect(session, buffer, &register(2, Some(&empty)), now, 401);
    let opaque = ntlm_offer(&second, "opaque").expect("an opaque");
    let token = base64::engine::general_purpose::STANDARD
        .decode(ntlm_offer(&second, "gssapi-data").expect("a CHALLENGE"))
        .expect("the CHALLENGE is base64");
    let challenge = ReceivedChallenge::parse(&token).expect("perch's CHALLENGE parses");
    let hash = NtHash::derive(PASSWORD);
    let identity = ClientIdentity {
        user: "alice",
        domain: "EXAMPLE",
        workstation: "FUZZ",
        nt_hash: &hash,
    };
    let entropy = ClientEntropy {
        client_challenge: [0x5a; 8],
        exported_session_key: [0x3c; 16],
        filetime: 0,
    };
    let (answer, keys) = ntlm::respond(&challenge, &identity, &entropy).expect("answered");
    let mut client = Association::new(Role::Client, keys, opaque, target, now);
    let unsigned = register(3, None);
    let (_, signature) = client.sign(&SignedParts::of(&parse_request(&unsigned)));
    let authorization = format!(
        "{signature}, gssapi-data=\"{}\", version=4",
        base64::engine::general_purpose::STANDARD.encode(answer.encode())
    );
    let ok = expect(
        session,
        buffer,
        &register(3, Some(&authorization)),
        now,
        200,
    );
    client
        .verify(&ok)
        .expect("the 200 to REGISTER is signed for alice");
    let invited = expect(session, buffer, &signed(&invite(), &mut client), now, 200);
    client
        .verify(&invited)
        .expect("the 200 to INVITE is signed");
    client
}

/// Delivers `Outbound::Revoke` by `route`; true if one reached the session (it must then
/// have closed the connection and dropped everything).
fn revoke(
    session: &mut Session,
    mailbox: &mut perch::net::outbox::Mailbox<Outbound>,
    id: u64,
    route: u8,
    now: Instant,
) -> bool {
    let mut revoked = false;
    if route == 0 {
        session.deliver(Outbound::Revoke, now);
        revoked = true;
    } else {
        rig().shared.revoke(&[ALICE.to_owned()]);
    }
    while let Ok(delivery) = mailbox.receiver.try_recv() {
        revoked |= delivery == Outbound::Revoke;
        session.deliver(delivery, now);
    }
    if revoked {
        assert_eq!(
            session.registered_as(),
            None,
            "registration kept after Revoke"
        );
        assert_eq!(session.dialog_count(), 0, "dialogs kept after Revoke");
        assert!(!bound(id), "registrar binding kept after Revoke");
    }
    revoked
}

/// Whether the registrar holds a binding of alice on connection `id`, expired or not (the
/// lookup is at the virtual clock's start: every binding of this run expires after it).
fn bound(id: u64) -> bool {
    let rig = rig();
    let start = *rig.clock.lock().unwrap();
    rig.shared
        .registrar
        .lookup(ALICE, start)
        .iter()
        .any(|(connection, _)| *connection == id)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let (control, stream) = data.split_at(10);
    let (reads, steps) = (&control[0..4], &control[4..8]);
    let (ntlm_mode, sign_input) = (control[8] & 1 == 1, control[8] & 2 == 2);
    let revoke_at = control[9]
        .checked_sub(1)
        .map(|v| (usize::from(v >> 1), v & 1));
    let rig = rig();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let peer = if ntlm_mode {
        IpAddr::V4(UNTRUSTED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let info = ConnectionInfo {
        id,
        peer: SocketAddr::new(peer, 5555),
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5061),
        transport: Transport::Tls,
    };
    let mut mailbox = rig.shared.outboxes.register(id, 64);
    let mut session = Session::new(info, rig.shared.clone());
    let mut now = *rig.clock.lock().unwrap() + Duration::from_secs(86_400);
    let mut buffer = BytesMut::new();

    let mut client = None;
    let input: Bytes = if ntlm_mode {
        let mut association = sign_in_ntlm(&mut session, &mut buffer, now);
        let input = if sign_input {
            sign_stream(stream, &session.frame_limits(), &mut association)
        } else {
            stream.to_vec()
        };
        client = Some(association);
        input.into()
    } else {
        expect(&mut session, &mut buffer, &register(1, None), now, 200);
        expect(&mut session, &mut buffer, &invite(), now, 200);
        Bytes::copy_from_slice(stream)
    };
    assert_eq!(session.registered_as(), Some(ALICE));
    assert_eq!(session.dialog_count(), 1);

    let mut rest = &input[..];
    let mut k = 0;
    let mut open = true;
    while !rest.is_empty() {
        if let Some((at, route)) = revoke_at
            && at == k
        {
            let revoked = revoke(&mut session, &mut mailbox, id, route, now);
            let still_open = drain(&mut session, &mut client);
            assert!(
                !(revoked && still_open),
                "Revoke did not close the connection"
            );
            if !still_open {
                open = false;
                break;
            }
        }
        let size = 1 + usize::from(reads[k % 4]);
        let step = u64::from(steps[k % 4]).pow(2);
        let (read, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        k += 1;
        let framed = feed(&mut session, &mut buffer, read, now);
        while let Ok(delivery) = mailbox.receiver.try_recv() {
            session.deliver(delivery, now);
        }
        now += Duration::from_millis(step);
        session.tick(now);
        let _ = session.next_deadline();
        if !drain(&mut session, &mut client) || !framed {
            open = false;
            break;
        }
    }
    if open
        && let Some((at, route)) = revoke_at
        && at >= k
    {
        let revoked = revoke(&mut session, &mut mailbox, id, route, now);
        let still_open = drain(&mut session, &mut client);
        assert!(
            !(revoked && still_open),
            "Revoke did not close the connection"
        );
    }
    rig.shared.outboxes.unregister(id);
    session.closed();
    drain(&mut session, &mut client);
    assert!(!bound(id), "registrar binding kept after closed()");
    assert_eq!(session.dialog_count(), 0);
    drop(session);
    assert!(
        rig.shared.user_dialogs.acquire(ALICE, 1),
        "alice still holds a dialog slot after her only connection closed"
    );
    rig.shared.user_dialogs.release(ALICE);
    assert_eq!(
        rig.shared.retransmissions.used(),
        0,
        "retransmission bytes still reserved after the session was dropped"
    );
    *rig.clock.lock().unwrap() = now;
});
