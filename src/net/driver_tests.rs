//! The driver over real sockets with a line protocol of its own: STARTTLS upgrades a plain
//! connection in place, and bytes sent after the request are refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::limits::ConnectionLimits;
use super::outbox::{self, Outboxes};
use super::{
    Connection, ConnectionInfo, DriverSettings, Output, Protocol, Retention, Transport,
    accept_loop, tls,
};

/// Lines in, lines out: `STARTTLS` asks for TLS; anything else is echoed, marked with
/// whether the connection was secured.
struct Lines {
    outboxes: Arc<Outboxes<()>>,
}

struct LineConnection {
    secure: bool,
    outputs: Vec<Output<()>>,
}

impl Protocol for Lines {
    const NAME: &'static str = "lines";
    type Connection = LineConnection;
    type Delivery = ();

    fn open(&self, _info: ConnectionInfo) -> LineConnection {
        LineConnection {
            secure: false,
            outputs: Vec::new(),
        }
    }

    fn outboxes(&self) -> &Arc<Outboxes<()>> {
        &self.outboxes
    }
}

impl Connection for LineConnection {
    type Delivery = ();
    type Answer = ();

    fn receive(&mut self, buffer: &mut BytesMut, _now: Instant) -> bool {
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line = buffer.split_to(end + 1);
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            if text == "STARTTLS" {
                self.outputs
                    .push(Output::Send(Bytes::from_static(b"PROCEED\n")));
                self.outputs.push(Output::StartTls);
                // The rest stays in the buffer, as a protocol that reads on would leave it.
                return true;
            }
            let mark = if self.secure { "secure" } else { "plain" };
            self.outputs
                .push(Output::Send(Bytes::from(format!("{mark} {text}\n"))));
        }
        true
    }

    fn deliver(&mut self, _delivery: (), _now: Instant) {}
    fn finish_deferred(&mut self, _id: u64, _answer: (), _now: Instant) {}
    fn next_deadline(&mut self) -> Option<Instant> {
        None
    }
    fn tick(&mut self, _now: Instant) {}
    fn take_outputs(&mut self) -> Vec<Output<()>> {
        std::mem::take(&mut self.outputs)
    }
    fn secured(&mut self, _now: Instant) {
        self.secure = true;
    }
    fn closed(&mut self, _mailbox: outbox::Mailbox<()>) -> Retention {
        Retention::Released
    }
}

struct Served {
    addr: std::net::SocketAddr,
    cert: std::path::PathBuf,
    _stop: watch::Sender<bool>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plain TCP listener whose connections may upgrade with the given certificate.
async fn serve() -> Served {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("perch-net-starttls-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let paths = tls::ensure_dev_certificate(&dir, "example.test", &[]).unwrap();
    let acceptor = TlsAcceptor::from(tls::server_config(&paths).unwrap());
    let (_acceptor_tx, acceptor_rx) = watch::channel(acceptor);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let settings = DriverSettings {
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        message_timeout: Duration::from_secs(5),
        outgoing_queue: 16,
    };
    let protocol = Arc::new(Lines {
        outboxes: Arc::new(Outboxes::default()),
    });
    tokio::spawn(accept_loop(
        listener,
        Transport::Tcp,
        Some(acceptor_rx),
        protocol,
        settings,
        ConnectionLimits::new(16, 16),
        stop_rx,
    ));
    Served {
        addr,
        cert: paths.cert,
        _stop: stop,
        _dir: TempDir(dir),
    }
}

fn connector(cert: &std::path::Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in tls::load_certificates(cert).unwrap() {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn starttls_upgrades_the_connection_in_place() {
    let served = serve().await;
    let mut plain = BufReader::new(TcpStream::connect(served.addr).await.unwrap());
    plain
        .get_mut()
        .write_all(b"hello\nSTARTTLS\n")
        .await
        .unwrap();
    let mut line = String::new();
    plain.read_line(&mut line).await.unwrap();
    assert_eq!(line, "plain hello\n");
    line.clear();
    plain.read_line(&mut line).await.unwrap();
    assert_eq!(line, "PROCEED\n");
    let tcp = plain.into_inner();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector(&served.cert).connect(name, tcp).await.unwrap();
    let mut tls = BufReader::new(tls);
    tls.get_mut().write_all(b"again\n").await.unwrap();
    line.clear();
    tls.read_line(&mut line).await.unwrap();
    assert_eq!(line, "secure again\n");
}

#[tokio::test]
async fn bytes_after_the_request_for_tls_close_the_connection() {
    let served = serve().await;
    let mut plain = BufReader::new(TcpStream::connect(served.addr).await.unwrap());
    // Injected plaintext that must never be taken as having come over TLS.
    plain
        .get_mut()
        .write_all(b"STARTTLS\ninjected\n")
        .await
        .unwrap();
    let mut line = String::new();
    plain.read_line(&mut line).await.unwrap();
    assert_eq!(line, "PROCEED\n");
    line.clear();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_line(&mut line))
        .await
        .unwrap();
    assert_eq!(read.unwrap(), 0, "closed, not {line:?}");
}
