//! A real server on 127.0.0.1:0 with a generated certificate, and a raw-bytes SIP client
//! over TLS or TCP, built on the library's client kit (`perch::lync::client`): its
//! connector, and its connection's framing without the answering half, so that a test
//! sees every byte the server sends and writes every byte it wants.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use perch::app::config::Config;
use perch::app::server::{self, RunningServer};
use perch::core::ports::Store;
use perch::lync::client::{Connector, SipConn, Trust, WireError};
use perch::lync::sip::framer::Frame;
use perch::lync::sip::request::ClientLine;
use perch::lync::sip::{Message, StartLine};
use perch::store::SqliteStore;

pub use perch::lync::client::Stream;

pub const DOMAIN: &str = "example.test";
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub store: Arc<dyn Store>,
    pub data_dir: PathBuf,
}

pub fn temp_dir(label: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "perch-it-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

impl TestServer {
    /// Users alice, bob (passwords `<name>-pw`) and a disabled dave.
    pub async fn start(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_seeded(adjust, |_| {}).await
    }

    /// Like `start`, with `seed` run against the store before the server loads it.
    pub async fn start_seeded(
        adjust: impl FnOnce(&mut Config),
        seed: impl FnOnce(&dyn Store) + Send + 'static,
    ) -> Self {
        let data_dir = temp_dir("server");
        let mut config = Config {
            domain: DOMAIN.into(),
            data_dir: data_dir.clone(),
            ..Config::default()
        };
        config.listen.tls = Some("127.0.0.1:0".parse().unwrap());
        config.listen.tcp = Some("127.0.0.1:0".parse().unwrap());
        adjust(&mut config);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data_dir).unwrap());
        let store_for_seed = store.clone();
        tokio::task::spawn_blocking(move || {
            for (user, enabled) in [("alice", true), ("bob", true), ("dave", false)] {
                let aor = format!("{user}@{DOMAIN}");
                let password = format!("{user}-pw");
                perch::core::service::add_user(
                    store_for_seed.as_ref(),
                    &aor,
                    None,
                    Some(&password),
                    enabled,
                )
                .unwrap();
            }
            seed(store_for_seed.as_ref());
        })
        .await
        .unwrap();
        let server = server::start(&config, store.clone()).await.unwrap();
        Self {
            server: Some(server),
            store,
            data_dir,
        }
    }

    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    pub async fn tls(&self) -> Client {
        let addr = self.running().tls_addr().unwrap();
        let cert_path = &self.running().certificate().unwrap().cert;
        let tls = tls_connect(addr, cert_path, "localhost").await.unwrap();
        Client::over(tls, "tls")
    }

    /// A plain TCP client connecting from `source` (any 127.x.y.z works on loopback).
    pub async fn tcp_from(&self, source: std::net::Ipv4Addr) -> Client {
        let connector = Connector::tcp(self.running().tcp_addr().unwrap(), WAIT);
        let (tcp, _) = connector.connect(Some(source.into())).await.unwrap();
        Client::over(tcp, "tcp")
    }

    pub async fn tcp(&self) -> Client {
        let connector = Connector::tcp(self.running().tcp_addr().unwrap(), WAIT);
        let (tcp, _) = connector.connect(None).await.unwrap();
        Client::over(tcp, "tcp")
    }

    /// The address and certificate a client of the kit (or `perch check`) needs to reach
    /// this server over TLS.
    pub fn tls_target(&self) -> (SocketAddr, PathBuf) {
        let running = self.running();
        (
            running.tls_addr().unwrap(),
            running.certificate().unwrap().cert.clone(),
        )
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// What the server sent: a message, or a bare CRLF keep-alive answer.
#[derive(Debug)]
pub enum Received {
    Message(Message),
    /// A message our strict parser refuses (e.g. a 400 echoing a malformed CSeq).
    Unparsed(Bytes),
    Pong,
}

pub struct Client {
    /// The To header (with our tag) of the client's current chat dialog, where a test keeps one.
    pub dialog_to: String,
    /// The kit's connection, used raw: nothing is answered or verified for the test.
    conn: SipConn,
    pub transport: &'static str,
    pub user: String,
    pub tag: String,
    pub call_id_counter: u32,
}

impl Client {
    /// A client over an already connected stream.
    pub fn over(stream: Box<dyn Stream>, transport: &'static str) -> Self {
        // The address our requests name in Via and Contact (see `request`).
        let local: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        Self {
            dialog_to: String::new(),
            conn: SipConn::new(stream, local, transport == "tls"),
            transport,
            user: "alice".into(),
            tag: "48213390".into(),
            call_id_counter: 0,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).await.unwrap();
    }

    /// Writes, reporting failure instead of panicking (for peers that close on us).
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.conn.queue(bytes);
        self.conn.flush().await.map_err(|error| match error {
            WireError::Write(e) => e,
            other => std::io::Error::other(other),
        })
    }

    /// Next frame from the server; `None` if the server closed the connection.
    pub async fn receive(&mut self) -> Option<Received> {
        loop {
            if self.conn.take_keepalive_answer() {
                return Some(Received::Pong);
            }
            if let Some(frame) = self.conn.next_frame().unwrap() {
                let Frame::Message { head, body } = frame else {
                    panic!("server sent a ping");
                };
                return Some(match Message::parse(&head, body) {
                    Ok(message) => Received::Message(message),
                    Err(_) => Received::Unparsed(head),
                });
            }
            let read = tokio::time::timeout(WAIT, self.conn.read_some())
                .await
                .expect("server did not answer in time");
            if read.is_err() {
                return None;
            }
        }
    }

    pub async fn message(&mut self) -> Message {
        match self.receive().await {
            Some(Received::Message(m)) => m,
            other => panic!("expected a SIP message, got {other:?}"),
        }
    }

    /// Next response, skipping nothing: the test expects the order.
    pub async fn response(&mut self) -> Message {
        let m = self.message().await;
        assert!(
            matches!(m.start, StartLine::Response { .. }),
            "expected a response, got {m:?}"
        );
        m
    }

    /// True once the server has closed the connection (reads EOF within the wait).
    pub async fn closed_by_server(&mut self) -> bool {
        loop {
            match tokio::time::timeout(WAIT, self.conn.read_some()).await {
                Ok(Err(_)) => return true,
                Ok(Ok(())) => continue,
                Err(_) => return false,
            }
        }
    }

    pub fn aor(&self) -> String {
        format!("{}@{DOMAIN}", self.user)
    }

    pub fn new_call_id(&mut self) -> String {
        self.call_id_counter += 1;
        format!("{}AbCgDeFa", self.call_id_counter)
    }

    /// A request from this client with the dialog headers SIPE would send (no Via branch).
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        method: &str,
        uri: &str,
        call_id: &str,
        cseq: u32,
        to: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Vec<u8> {
        let transport = self.transport.to_string();
        ClientLine::new(
            &transport,
            "127.0.0.1:5555",
            &self.aor(),
            &self.tag,
            "abc123",
        )
        .head(method, uri, to, call_id, cseq)
        .encode(extra, body.as_bytes())
        .to_vec()
    }

    /// OPTIONS to the domain, the simplest request perch answers 200 (Call-ID `opt-N`).
    pub fn options(&self, n: u32) -> Vec<u8> {
        self.request(
            "OPTIONS",
            &format!("sip:{DOMAIN}"),
            &format!("opt-{n}"),
            n,
            &format!("<sip:{DOMAIN}>"),
            &[],
            "",
        )
    }

    /// A REGISTER for this client's own address, with `authorization` if given.
    pub fn register_request(
        &self,
        call_id: &str,
        cseq: u32,
        authorization: Option<&str>,
    ) -> Vec<u8> {
        let to = format!("<sip:{}>", self.aor());
        let contact = format!("<sip:127.0.0.1:5555;transport={}>", self.transport);
        let mut extra = vec![("Contact", contact.as_str())];
        if let Some(authorization) = authorization {
            extra.push(("Authorization", authorization));
        }
        self.request(
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            call_id,
            cseq,
            &to,
            &extra,
            "",
        )
    }

    /// An INVITE to the chat endpoint, which opens the chat dialog `call_id`.
    pub fn invite_chat(&self, call_id: &str, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
        let chat = format!("sip:ocschat@{DOMAIN}");
        self.request(
            "INVITE",
            &chat,
            call_id,
            1,
            &format!("<{chat}>"),
            extra,
            body,
        )
    }

    /// REGISTER without credentials (trusted networks) and return the response.
    pub async fn register_plain(&mut self) -> Message {
        let call_id = self.new_call_id();
        let req = self.register_request(&call_id, 1, None);
        self.send(&req).await;
        self.response().await
    }
}

/// The response a client gives to a server request, shaped as SIPE shapes it.
pub fn answer(request: &Message, code: u16) -> Vec<u8> {
    let h = |n| request.headers.get(n).unwrap_or_default();
    format!(
        "SIP/2.0 {code} Whatever\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq")
    )
    .into_bytes()
}

pub fn status(message: &Message) -> u16 {
    match message.start {
        StartLine::Response { code, .. } => code,
        StartLine::Request { .. } => 0,
    }
}

pub fn body_text(message: &Message) -> String {
    String::from_utf8(message.body.to_vec()).unwrap()
}

/// A message as a client of the store would post it.
pub fn post_message(
    store: &dyn Store,
    room_id: i64,
    author: &str,
    ts: i64,
    text: &str,
) -> perch::core::ports::Pending<perch::core::ports::ChatMessage> {
    store.append_message(perch::core::ports::ChatMessage {
        id: 0,
        room_id,
        author: author.into(),
        ts,
        text: text.into(),
        extension: None,
    })
}

/// A room's history, read from blocking or async test code.
pub fn read_history(
    store: &dyn Store,
    room_id: i64,
    query: perch::core::ports::HistoryQuery,
) -> Vec<perch::core::ports::ChatMessage> {
    perch::core::ports::read_blocking(store.history(room_id, query)).unwrap()
}

/// A TLS connection to `addr` that trusts only the certificate in `cert_path` and checks
/// that it names `name`, as a client that verifies names would (the kit's connector).
pub async fn tls_connect(
    addr: SocketAddr,
    cert_path: &std::path::Path,
    name: &str,
) -> std::io::Result<Box<dyn Stream>> {
    let connector = Connector::tls(addr, name, &Trust::File(cert_path.to_owned()), WAIT).unwrap();
    match connector.connect(None).await {
        Ok((stream, _)) => Ok(stream),
        Err(WireError::Connect(e) | WireError::Tls(e)) => Err(e),
        Err(other) => Err(std::io::Error::other(other)),
    }
}
