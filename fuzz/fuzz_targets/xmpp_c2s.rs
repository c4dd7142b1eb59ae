//! One XMPP client stream, `xmpp::c2s::C2s`, fed arbitrary client bytes as the network
//! driver feeds it, over the real chat core and a SQLite store.
//!
//! Input layout: 2 control bytes, then the stream.
//! - byte 0, the start (`% 4`): 0 and 1, alice is signed in and bound first over direct
//!   TLS (the prefix below, checked), then the stream follows in her session; 2, the
//!   stream from its first byte over direct TLS (`Transport::Tls`); 3, the same over plain
//!   TCP (`Transport::Tcp`, so STARTTLS is offered and required: an `Output::StartTls` is
//!   answered with `secured()` at once, as if the handshake succeeded);
//! - byte 1 seeds the read sizes: 0 = each piece (below) in one read, else a small LCG
//!   cuts the pieces into reads of 1..=64 bytes.
//!
//! The stream is cut into pieces at every 0xFF byte (the byte itself is dropped; it is
//! never valid UTF-8, so nothing is lost): a seed can end a read where a client would wait
//! for the server, e.g. after `<auth>` until `<success/>` before restarting the stream.
//!
//! Prefix (modes 0 and 1), in two reads: the stream header to `example.test` and
//! `<auth mechanism='PLAIN'>` with `\0alice@example.test\0alice-pw`; then the restarted
//! header and a bind iq for the resource `fuzz`. It must answer `<success/>` and a bind
//! result with `alice@example.test/fuzz`.
//!
//! After each read, the outputs are taken until there are none: every `Output::Await` is
//! run to completion on a current-thread tokio runtime (whose context is entered for the
//! whole input, so spawned and blocking tasks work) and its answer goes to
//! `finish_deferred`, in order; deliveries the hub queued in the connection's outbox go to
//! `deliver` (the outbox holds the configured `outgoing_queue`, 1024; a cut-off is not
//! acted on). After `Output::Close` nothing more is fed; at the end `closed()` runs, and a session it parked for resumption is given up.
//!
//! bob is signed in (the same way, resource `bob`) and in the room, with no history, once
//! for the whole process, on connection `1 << 40`: alice meets him as an occupant when she
//! joins, and after each input what he was delivered of it (her presence, messages,
//! leaving) goes through his `deliver` and the same checks as alice's outputs.
//!
//! The store (`perch-fuzz-xmpp-c2s-<pid>` in the temporary directory) holds alice and bob
//! (passwords `alice-pw`, `bob-pw`), and the open room `Lobby` (uid
//! `00000000-0000-4000-8000-0000000c25c2`, so `00000000-0000-4000-8000-0000000c25c2@conference.example.test`),
//! in a category open to `example.test`; nobody manages it, so `muc#admin` changes are
//! refused by policy and the store's configuration stays the same from input to input.
//! The SCRAM verifiers are made with 1 PBKDF2 iteration (not `SCRAM_ITERATIONS`) so that
//! the PLAIN check of every input is cheap. The clock is virtual: each input
//! starts a day after the previous one, so the shared sign-in failure throttle does not
//! carry from one input into the next. The server is `app::server::assemble` with the
//! default config and `XmppProtocol::new` as `start_prepared` builds it.
//!
//! Checks, on alice's stream and on bob's: no panic; every `Output::Send` and every
//! delivery is valid UTF-8; everything perch writes, read as one server stream (restarted after `<success/>` and
//! `<proceed/>`), frames with `StreamFramer` (generous limits); after a `<stream:error>`
//! only `</stream:stream>` and `Output::Close` follow, and after `Output::Close` nothing
//! is sent; `Output::StartTls` comes at most once and only on a TCP stream.
//!
//! Besides, perch's header must come before anything else it writes in a stream (RFC 6120
//! §4.9.1.2: even a stream error answering a bad header follows perch's own header;
//! finding 4 in the README, fixed).
//!
//! `PERCH_FUZZ_TRACE=1` prints what is fed and written to stderr.
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
use perch::core::credentials::{Credentials, DigestHa1, NtHash, ScramHash, ScramVerifier};
use perch::core::manage::{CategoryChange, ListEdit};
use perch::core::model::{Principal, Privacy, Room};
use perch::core::ports::{Store, UserRecord, wait};
use perch::core::service;
use perch::net::outbox::Mailbox;
use perch::net::{Connection, ConnectionInfo, Output, Protocol, Retention, Transport};
use perch::store::SqliteStore;
use perch::xml::XmlLimits;
use perch::xmpp::c2s::C2s;
use perch::xmpp::stream::{StreamEvent, StreamFramer, StreamLimits};
use perch::xmpp::XmppProtocol;
use tokio::runtime::Runtime;

const DOMAIN: &str = "example.test";
const MUC_DOMAIN: &str = "conference.example.test";
const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
/// bob's connection id (alice's count up from 1).
const BOB_CONNECTION: u64 = 1 << 40;
const ROOM_UID: &str = "00000000-0000-4000-8000-0000000c25c2";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

struct Rig {
    protocol: XmppProtocol,
    runtime: Runtime,
    /// The configured outgoing queue of a connection (its outbox's capacity).
    queue: usize,
    /// bob, signed in and in the room for the whole process: he hears what alice does
    /// there, and she meets an occupant besides herself.
    bob: Mutex<Client>,
    /// Kept for the life of the process (its writer thread commits the posts).
    _store: Arc<dyn Store>,
    /// The virtual clock: where the last input left it.
    clock: Mutex<Instant>,
}

/// A user whose SCRAM verifiers take one PBKDF2 iteration.
fn user(aor: &str, password: &str) -> UserRecord {
    let scram = |hash| ScramVerifier::new(hash, password, b"perch-fuzz-salt", 1).unwrap();
    UserRecord {
        aor: aor.to_owned(),
        display_name: String::new(),
        enabled: true,
        credentials: Some(Credentials {
            digest: Some(DigestHa1::derive(aor, password)),
            scram_sha1: Some(scram(ScramHash::Sha1)),
            scram_sha256: Some(scram(ScramHash::Sha256)),
            nt_hash: Some(NtHash::derive(password)),
        }),
        unlocked_at: 0,
    }
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("perch-fuzz-xmpp-c2s-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).unwrap());
        wait(store.add_user(user(ALICE, "alice-pw"))).unwrap();
        wait(store.add_user(user(BOB, "bob-pw"))).unwrap();
        let snapshot = || Snapshot::from_model(store.load_model().unwrap());
        let general = CategoryChange {
            name: Some("General".into()),
            allowed: vec![ListEdit::Add(vec![Principal::Domain(DOMAIN.into())])],
            ..CategoryChange::default()
        };
        let general = service::save_category(store.as_ref(), &snapshot(), None, general)
            .unwrap()
            .category;
        // A fixed uid, so the seeds' room JID names it in every run.
        let lobby = Room {
            privacy: Privacy::Open,
            ..Room::new(ROOM_UID, "Lobby", general.id)
        };
        wait(store.save_room(lobby)).unwrap();
        let config = Config::default();
        assert_eq!(config.domain, DOMAIN);
        assert_eq!(config.muc_domain(), MUC_DOMAIN);
        let assembled = server::assemble(&config, store.clone()).unwrap();
        let settings = server::xmpp_settings(&config);
        let protocol = XmppProtocol::new(
            settings,
            assembled.core.clone(),
            store.clone(),
            assembled.lync.throttle.clone(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bob = {
            let _context = runtime.enter();
            let mut bob = Client::open(&protocol, BOB_CONNECTION, Transport::Tls, 1 << 16, Instant::now());
            bob.sign_in(&runtime, "bob", "bob-pw", "bob");
            let join = format!("<presence to='{ROOM_UID}@{MUC_DOMAIN}/bob'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>");
            assert!(bob.read(&runtime, join.as_bytes()));
            assert!(bob.server.text.contains("<status code=\"110\"/>"), "bob is not in the room: {}", bob.server.text);
            bob
        };
        Rig {
            protocol,
            runtime,
            queue: config.limits.outgoing_queue,
            bob: Mutex::new(bob),
            _store: store,
            clock: Mutex::new(Instant::now()),
        }
    })
}

static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("PERCH_FUZZ_TRACE").is_some());

/// What perch wrote so far, as the client reads it, and the checks on it.
struct Server {
    framer: StreamFramer,
    buffer: BytesMut,
    /// A `<stream:error>` went out.
    errored: bool,
    /// `Output::Close` came.
    closed: bool,
    started_tls: bool,
    tcp: bool,
    /// No header of perch's opens the current stream yet (at the start, after `<success/>`
    /// and `<proceed/>`).
    awaiting_header: bool,
    /// Everything written, for the prefix's checks and messages.
    text: String,
}

impl Server {
    fn new(tcp: bool) -> Self {
        // perch's stanzas may be deeper and longer than what a client may send (a MAM
        // result wraps the message it forwards).
        let limits = StreamLimits {
            max_header_bytes: usize::MAX,
            max_stanza_bytes: usize::MAX,
            xml: XmlLimits {
                max_depth: 1000,
                max_elements: usize::MAX,
                max_attributes: usize::MAX,
                max_value_bytes: usize::MAX,
            },
        };
        Self {
            framer: StreamFramer::new(limits),
            buffer: BytesMut::new(),
            errored: false,
            closed: false,
            started_tls: false,
            tcp,
            awaiting_header: true,
            text: String::new(),
        }
    }

    fn sent(&mut self, bytes: &[u8], what: &str) {
        let text = std::str::from_utf8(bytes)
            .unwrap_or_else(|error| panic!("{what} is not UTF-8 ({error}): {bytes:?}"));
        if *TRACE {
            eprintln!("perch {what} > {text}");
        }
        assert!(!self.closed, "{what} after Output::Close: {text:?}");
        if self.errored {
            assert_eq!(text, "</stream:stream>", "{what} after a stream error");
        }
        if let Some(at) = text.find("<stream:error") {
            self.errored = true;
            let rest = &text[at..];
            let end = rest
                .find("</stream:error>")
                .map(|end| end + "</stream:error>".len())
                .unwrap_or_else(|| panic!("stream error not closed in one write: {text:?}"));
            assert!(
                matches!(&rest[end..], "" | "</stream:stream>"),
                "more than the stream's end after a stream error: {text:?}"
            );
        }
        // Finding 4 (see the README): nothing, a stream error included, before perch's header.
        assert!(
            !self.awaiting_header || text.starts_with("<?xml") || text.starts_with("<stream:stream"),
            "perch wrote {text:?} before its stream header\nall it wrote before: {:?}",
            self.text
        );
        self.text.push_str(text);
        self.buffer.extend_from_slice(bytes);
        loop {
            match self.framer.next(&mut self.buffer) {
                Ok(Some(StreamEvent::Stanza(stanza))) => {
                    if (stanza.namespace == NS_SASL && stanza.name == "success")
                        || (stanza.namespace == NS_TLS && stanza.name == "proceed")
                    {
                        self.framer.restart();
                        self.awaiting_header = true;
                    }
                }
                Ok(Some(StreamEvent::Open(_))) => self.awaiting_header = false,
                Ok(Some(StreamEvent::Close)) => {}
                Ok(None) => break,
                Err(error) => panic!(
                    "perch's stream does not frame ({error:?})\nall it wrote: {:?}",
                    self.text
                ),
            }
        }
    }
}

struct Client {
    c2s: C2s,
    /// Until `closed()` takes it.
    mailbox: Option<Mailbox<Bytes>>,
    server: Server,
    buffer: BytesMut,
    now: Instant,
}

impl Client {
    fn open(
        protocol: &XmppProtocol,
        id: u64,
        transport: Transport,
        queue: usize,
        now: Instant,
    ) -> Self {
        let info = ConnectionInfo {
            id,
            peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 40000),
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5222),
            transport,
        };
        Client {
            mailbox: Some(protocol.outboxes().register(id, queue)),
            c2s: protocol.open(info),
            server: Server::new(transport == Transport::Tcp),
            buffer: BytesMut::new(),
            now,
        }
    }

    /// SASL PLAIN as `user`, then binds `resource`; both must succeed.
    fn sign_in(&mut self, runtime: &Runtime, user: &str, password: &str, resource: &str) {
        let plain = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}@{DOMAIN}\0{password}"));
        let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>";
        let auth = format!("{header}<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain}</auth>");
        assert!(self.read(runtime, auth.as_bytes()), "{}", self.server.text);
        assert!(
            self.server.text.contains("<success "),
            "{user} is not signed in: {}",
            self.server.text
        );
        let bind = format!(
            "{header}<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        );
        assert!(self.read(runtime, bind.as_bytes()), "{}", self.server.text);
        let jid = format!("<jid>{user}@{DOMAIN}/{resource}</jid>");
        assert!(
            self.server.text.contains(&jid),
            "{user} is not bound: {}",
            self.server.text
        );
    }

    /// Takes the outputs until there are none; false once the connection closes.
    fn drain(&mut self, runtime: &Runtime) -> bool {
        loop {
            let mut outputs = self.c2s.take_outputs();
            while let Some(Ok(delivery)) = self.mailbox.as_mut().map(|m| m.receiver.try_recv()) {
                std::str::from_utf8(&delivery).expect("a delivery is UTF-8");
                self.c2s.deliver(delivery, self.now);
                outputs.extend(self.c2s.take_outputs());
            }
            if outputs.is_empty() {
                return !self.server.closed;
            }
            for output in outputs {
                match output {
                    Output::Send(bytes) => self.server.sent(&bytes, "Send"),
                    Output::Close => {
                        if *TRACE {
                            eprintln!("perch: close");
                        }
                        self.server.closed = true;
                    }
                    Output::StartTls => {
                        assert!(self.server.tcp, "StartTls on a TLS stream");
                        assert!(!self.server.started_tls, "StartTls twice");
                        assert!(!self.server.closed, "StartTls after Close");
                        if *TRACE {
                            eprintln!("perch: starttls");
                        }
                        self.server.started_tls = true;
                        self.c2s.secured(self.now);
                    }
                    Output::Await(deferred) => {
                        let answer = runtime.block_on(deferred.work);
                        self.c2s.finish_deferred(deferred.id, answer, self.now);
                    }
                }
            }
        }
    }

    /// One read; false once the connection would be closed.
    fn read(&mut self, runtime: &Runtime, bytes: &[u8]) -> bool {
        if *TRACE {
            eprintln!("client > {}", String::from_utf8_lossy(bytes));
        }
        self.buffer.extend_from_slice(bytes);
        let readable = self.c2s.receive(&mut self.buffer, self.now);
        let open = self.drain(runtime);
        readable && open
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (control, stream) = data.split_at(2);
    let mode = control[0] % 4;
    let rig = rig();
    let _context = rig.runtime.enter();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let transport = if mode == 3 {
        Transport::Tcp
    } else {
        Transport::Tls
    };
    let now = *rig.clock.lock().unwrap() + Duration::from_secs(86_400);
    let mut client = Client::open(&rig.protocol, id, transport, rig.queue, now);
    let runtime = &rig.runtime;
    if mode < 2 {
        client.sign_in(runtime, "alice", "alice-pw", "fuzz");
    }

    let mut state = u32::from(control[1]);
    'pieces: for piece in stream.split(|b| *b == 0xFF) {
        let mut rest = piece;
        loop {
            let size = if control[1] == 0 {
                rest.len()
            } else {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                1 + (state >> 16) as usize % 64
            };
            let (read, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            if !client.read(runtime, read) {
                break 'pieces;
            }
            if rest.is_empty() {
                break;
            }
        }
    }
    if let Some(mailbox) = client.mailbox.take()
        && client.c2s.closed(mailbox) == Retention::Released
    {
        rig.protocol.outboxes().unregister(id);
    }
    // A session parked for resumption is given up at once: each input starts afresh.
    rig.protocol.sweep(client.now + Duration::from_secs(86_400));
    client.drain(runtime);
    // What bob heard of it (alice's presence and messages, her leaving) is checked too.
    let mut bob = rig.bob.lock().unwrap();
    bob.server.text.clear();
    bob.now = client.now;
    assert!(bob.drain(runtime), "bob's stream closed");
    *rig.clock.lock().unwrap() = client.now;
});
