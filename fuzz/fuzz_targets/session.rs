//! A SIP `Session` registered by trust, fed arbitrary bytes as the transport feeds it.
//!
//! Input layout: 8 control bytes, then the stream.
//! - read `k` is the next `1 + r[k % 4]` bytes of the stream (1..=256), `r` = bytes 0..4;
//! - after it the clock moves on by `t[k % 4]²` ms, `t` = bytes 4..8 (0 to 65 s: small
//!   steps mostly, and large enough ones for stored responses to expire and our own INFOs
//!   to time out, which ends the dialog as an unanswered INFO does).
//!
//! Every session first REGISTERs as alice from 127.0.0.1 (a trusted network) and INVITEs
//! the chat URI: Call-ID `fuzz`, From `<sip:alice@example.test>;tag=fuzz`, so a request
//! with those (and a To without a tag, or with the server's) is in the chat dialog and its
//! INFO bodies reach the real XCCOS endpoint, hub and a SQLite store in a temporary
//! directory (`perch-fuzz-session-<pid>`), seeded with alice and the open room
//! `ma-chan://example.test/00000000-0000-4000-8000-00000000f022`.
//!
//! Each read goes through `framer::decode` (the session's own limits) and
//! `Session::handle_frame` until `Ok(None)`; a framing error goes to `handle_frame_error`
//! and ends the input, as does an `Output::Close`. Deliveries the hub queued for the
//! connection are handed to `Session::deliver`, then `tick` runs. Deferred work (a post
//! waiting for its commit) is dropped, never awaited: this target has no runtime. At the
//! end `closed()` leaves every room. Checks: no panic.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use perch::app::config::Config;
use perch::app::server;
use perch::core::Snapshot;
use perch::core::manage::{CategoryChange, ListEdit};
use perch::core::model::{Principal, Privacy, Room};
use perch::core::ports::{Store, wait};
use perch::core::service;
use perch::lync::session::{ConnectionInfo, Output, Session, Shared, Transport};
use perch::lync::sip::framer;
use perch::lync::sip::request::RequestHead;
use perch::lync::sip::{FrameLimits, Message, StartLine};
use perch::store::SqliteStore;

const DOMAIN: &str = "example.test";
const CHAT: &str = "sip:ocschat@example.test";
const ROOM_UID: &str = "00000000-0000-4000-8000-00000000f022";

struct Rig {
    shared: Arc<Shared>,
    /// Kept for the life of the process (its writer thread commits the posts).
    _store: Arc<dyn Store>,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("perch-fuzz-session-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).unwrap());
        service::add_user(store.as_ref(), "alice@example.test", None, None, true).unwrap();
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
        Rig {
            shared: server::assemble(&config, store.clone()).unwrap().lync,
            _store: store,
        }
    })
}

fn request(method: &str, uri: &str, to: &str, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    RequestHead {
        method,
        uri,
        via: "SIP/2.0/TLS 127.0.0.1:5555",
        from: "<sip:alice@example.test>;tag=fuzz",
        to,
        call_id: "fuzz",
        cseq: 1,
    }
    .encode(extra, body.as_bytes())
    .to_vec()
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

/// Takes the outputs; false if one of them closes the connection.
fn drain(session: &mut Session) -> bool {
    let mut open = true;
    for output in session.take_outputs() {
        match output {
            Output::Send(bytes) => assert!(!bytes.is_empty()),
            Output::Close => open = false,
            Output::Await(_) => {}
        }
    }
    open
}

/// The status of the single response a prelude request got.
fn answered(session: &mut Session) -> u16 {
    let outputs = session.take_outputs();
    assert_eq!(outputs.len(), 1);
    let Output::Send(bytes) = &outputs[0] else {
        panic!("prelude request not answered");
    };
    let mut buffer = BytesMut::from(&bytes[..]);
    let Ok(Some(framer::Frame::Message { head, body })) =
        framer::decode(&mut buffer, &FrameLimits::default())
    else {
        panic!("prelude answer does not frame");
    };
    match Message::parse(&head, body).map(|m| m.start) {
        Ok(StartLine::Response { code, .. }) => code,
        _ => panic!("prelude answer is not a response"),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (control, stream) = data.split_at(8);
    let (reads, steps) = control.split_at(4);
    let rig = rig();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let info = ConnectionInfo {
        id,
        peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5555),
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5061),
        transport: Transport::Tls,
    };
    let mut mailbox = rig.shared.outboxes.register(id, 64);
    let mut session = Session::new(info, rig.shared.clone());
    let mut now = Instant::now();
    let mut buffer = BytesMut::new();

    let register = request(
        "REGISTER",
        "sip:example.test",
        "<sip:alice@example.test>",
        &[("Contact", "<sip:127.0.0.1:5555;transport=tls>")],
        "",
    );
    assert!(feed(&mut session, &mut buffer, &register, now));
    assert_eq!(answered(&mut session), 200);
    let invite = request(
        "INVITE",
        CHAT,
        &format!("<{CHAT}>"),
        &[
            ("Contact", "<sip:alice@example.test;gruu>"),
            ("Content-Type", "application/sdp"),
        ],
        "v=0\r\n",
    );
    assert!(feed(&mut session, &mut buffer, &invite, now));
    assert_eq!(answered(&mut session), 200);

    let mut rest = stream;
    let mut k = 0;
    while !rest.is_empty() {
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
        if !drain(&mut session) || !framed {
            break;
        }
    }
    rig.shared.outboxes.unregister(id);
    session.closed();
    drain(&mut session);
});
