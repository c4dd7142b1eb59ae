//! The transport limit: a server built from perch's SIP codec and nothing else. It answers
//! every request 200 (INVITE with a To tag, so a dialog forms), echoes each command INFO
//! back to its sender as an INFO (standing in for the `rpl`), and fans each post out as an
//! INFO to every connection that named the post's room in a join or bjoin (`--fanout
//! room`, the default: the same recipients perch would pick) or to every connection
//! (`--fanout all`). No core, no store, no checks. Each recipient's INFO is built for its
//! own dialog, as perch does, and a full outgoing queue closes the connection, as in perch.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use perch::lync::sip::framer::{self, Frame, FrameLimits};
use perch::lync::sip::request::RequestHead;
use perch::lync::sip::response::response;
use perch::lync::sip::{Message, Method, NameAddr, StartLine};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::xccos;
use perch::lync::client::Stream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FanoutMode {
    /// To the connections that joined the post's room.
    Room,
    /// To every connection.
    All,
}

impl FanoutMode {
    fn as_str(self) -> &'static str {
        match self {
            FanoutMode::Room => "room",
            FanoutMode::All => "all",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NullError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] perch::net::tls::TlsError),
    #[error("cannot start the null responder: {0}")]
    Spawn(std::io::Error),
    #[error("the null responder did not say where it listens: {0}")]
    Handshake(String),
}

/// Deliveries queued for one slow connection before it is closed (perch's default).
const OUTGOING_QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct NullOptions {
    pub listen: SocketAddr,
    /// Serve TLS with a development certificate generated in this directory.
    pub tls_dir: Option<PathBuf>,
    pub fanout: FanoutMode,
    /// Stop after this long, whatever happens.
    pub lifetime: Duration,
}

#[derive(Default)]
struct Hub {
    connections: Mutex<HashMap<u64, mpsc::Sender<Bytes>>>,
    rooms: Mutex<HashMap<String, HashSet<u64>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Maps of whole entries: still consistent after a panic elsewhere.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    fn join(&self, connection: u64, rooms: &[String]) {
        let mut map = lock(&self.rooms);
        for room in rooms {
            map.entry(room.clone()).or_default().insert(connection);
        }
    }

    fn leave(&self, connection: u64, rooms: &HashSet<String>) {
        lock(&self.connections).remove(&connection);
        let mut map = lock(&self.rooms);
        for room in rooms {
            if let Some(set) = map.get_mut(room) {
                set.remove(&connection);
                if set.is_empty() {
                    map.remove(room);
                }
            }
        }
    }

    fn fan_out(&self, mode: FanoutMode, room: Option<&str>, body: &Bytes) {
        let recipients: Vec<u64> = match (mode, room) {
            (FanoutMode::All, _) => lock(&self.connections).keys().copied().collect(),
            (FanoutMode::Room, Some(room)) => lock(&self.rooms)
                .get(room)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default(),
            (FanoutMode::Room, None) => Vec::new(),
        };
        let mut connections = lock(&self.connections);
        for id in recipients {
            let full = connections.get(&id).is_some_and(|tx| {
                matches!(
                    tx.try_send(body.clone()),
                    Err(mpsc::error::TrySendError::Full(_))
                )
            });
            if full {
                // Dropping the sender ends that connection's receive loop.
                connections.remove(&id);
            }
        }
    }
}

/// Runs the null responder until its lifetime ends or it is told to stop. Prints
/// `listening ADDR` on stdout once it accepts connections.
pub async fn serve(options: NullOptions) -> Result<(), NullError> {
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| NullError::Bind {
            addr: options.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| NullError::Bind {
        addr: options.listen,
        source,
    })?;
    let acceptor = match &options.tls_dir {
        Some(dir) => {
            let paths = perch::net::tls::ensure_dev_certificate(dir, "localhost", &[])?;
            Some(TlsAcceptor::from(perch::net::tls::server_config(&paths)?))
        }
        None => None,
    };
    println!("listening {local}");
    eprintln!(
        "perch-load null responder on {local} ({}, fan-out to {}), stopping in {} s",
        if acceptor.is_some() { "TLS" } else { "TCP" },
        options.fanout.as_str(),
        options.lifetime.as_secs()
    );
    let hub = Arc::new(Hub::default());
    let next_id = AtomicU64::new(1);
    let stop = tokio::time::sleep(options.lifetime);
    tokio::pin!(stop);
    let mut terminate = signal_terminate();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let (hub, acceptor, mode) = (hub.clone(), acceptor.clone(), options.fanout);
                tokio::spawn(async move {
                    let local = tcp.local_addr().unwrap_or(local);
                    match acceptor {
                        None => connection(Box::new(tcp), local, "TCP", id, hub, mode).await,
                        Some(acceptor) => {
                            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                            if let Ok(Ok(tls)) = handshake {
                                connection(Box::new(tls), local, "TLS", id, hub, mode).await;
                            }
                        }
                    }
                });
            }
            _ = &mut stop => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    Ok(())
}

/// SIGTERM as a stream; a receiver that never fires where it cannot be installed.
fn signal_terminate() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    if let Ok(mut signal) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::spawn(async move {
            signal.recv().await;
            let _ = tx.send(()).await;
        });
    } else {
        // Keep the sender alive so `recv` waits forever instead of returning None.
        tokio::spawn(async move {
            std::future::pending::<()>().await;
            drop(tx);
        });
    }
    rx
}

/// The chat dialog a client opened with us.
struct NullDialog {
    call_id: String,
    /// The client's From (tag included): our To.
    remote_from: String,
    /// Our From: the URI the client invited, with our tag.
    local_from: String,
    remote_target: String,
    cseq: u32,
}

fn info_request(
    dialog: &mut NullDialog,
    local: SocketAddr,
    transport: &str,
    branch: u64,
    body: Bytes,
) -> Bytes {
    dialog.cseq += 1;
    let via = format!("SIP/2.0/{transport} {local};branch=z9hG4bKnull{branch}");
    RequestHead {
        method: "INFO",
        uri: &dialog.remote_target,
        via: &via,
        from: &dialog.local_from,
        to: &dialog.remote_from,
        call_id: &dialog.call_id,
        cseq: dialog.cseq,
    }
    .encode(&[("Content-Type", "text/plain")], &body)
}

async fn connection(
    mut stream: Box<dyn Stream>,
    local: SocketAddr,
    transport: &'static str,
    id: u64,
    hub: Arc<Hub>,
    mode: FanoutMode,
) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(OUTGOING_QUEUE);
    lock(&hub.connections).insert(id, tx);
    let limits = FrameLimits::default();
    let mut input = BytesMut::with_capacity(4096);
    let mut output = BytesMut::with_capacity(4096);
    let mut dialog: Option<NullDialog> = None;
    let mut rooms: HashSet<String> = HashSet::new();
    let mut sent = 0u64;
    'connection: loop {
        tokio::select! {
            read = stream.read_buf(&mut input) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break 'connection;
                }
                loop {
                    let frame = match framer::decode(&mut input, &limits) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(_) => break 'connection,
                    };
                    let (head, body) = match frame {
                        Frame::Ping => {
                            output.extend_from_slice(b"\r\n");
                            continue;
                        }
                        Frame::Message { head, body } => (head, body),
                    };
                    let Ok(message) = Message::parse(&head, body) else {
                        continue;
                    };
                    let StartLine::Request { method, .. } = &message.start else {
                        continue; // the client's answers to our INFOs
                    };
                    match method {
                        Method::Ack => continue,
                        Method::Invite => {
                            let tag = format!("null{id}");
                            let ok = response(&message.headers, 200, Some(&tag));
                            dialog = dialog_of(&message, &tag);
                            output.extend_from_slice(&ok.encode());
                        }
                        Method::Bye => {
                            dialog = None;
                            output.extend_from_slice(&response(&message.headers, 200, None).encode());
                        }
                        Method::Info => {
                            output.extend_from_slice(&response(&message.headers, 200, None).encode());
                            let body = message.body;
                            if xccos::is_post(&body) {
                                let room = xccos::post_room(&body);
                                hub.fan_out(mode, room.as_deref(), &body);
                            } else if let Some(dialog) = dialog.as_mut() {
                                let named = xccos::joined_rooms(&body);
                                if !named.is_empty() {
                                    hub.join(id, &named);
                                    rooms.extend(named);
                                }
                                sent += 1;
                                output.extend_from_slice(&info_request(dialog, local, transport, sent, body));
                            }
                        }
                        _ => {
                            let tag = format!("null{id}");
                            output.extend_from_slice(&response(&message.headers, 200, Some(&tag)).encode());
                        }
                    }
                }
            }
            delivery = rx.recv() => {
                let Some(body) = delivery else {
                    break 'connection; // cut off: the queue was full
                };
                if let Some(dialog) = dialog.as_mut() {
                    sent += 1;
                    output.extend_from_slice(&info_request(dialog, local, transport, sent, body));
                }
                // Take whatever else is queued now, to write it in one go.
                while let Ok(body) = rx.try_recv() {
                    if let Some(dialog) = dialog.as_mut() {
                        sent += 1;
                        output.extend_from_slice(&info_request(dialog, local, transport, sent, body));
                    }
                }
            }
        }
        if !output.is_empty() {
            let bytes = output.split().freeze();
            if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
                break;
            }
        }
    }
    hub.leave(id, &rooms);
}

fn dialog_of(invite: &Message, tag: &str) -> Option<NullDialog> {
    let remote_from = invite.headers.get("From")?.to_owned();
    let to = NameAddr::parse(invite.headers.get("To")?)?;
    let remote_target = invite
        .headers
        .get("Contact")
        .and_then(NameAddr::parse)
        .map_or_else(
            || NameAddr::parse(&remote_from).map(|n| n.uri),
            |c| Some(c.uri),
        )?;
    Some(NullDialog {
        call_id: invite.call_id().to_owned(),
        remote_from,
        local_from: format!("<{}>;tag={tag}", to.uri),
        remote_target,
        cseq: 0,
    })
}

/// A null responder in a child process of this binary, so that its CPU and memory can be
/// read from /proc like perch's. Killed when dropped.
pub struct NullChild {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    pub cert: Option<PathBuf>,
    tls_dir: Option<PathBuf>,
}

impl NullChild {
    pub async fn spawn(
        tls: bool,
        fanout: FanoutMode,
        lifetime: Duration,
    ) -> Result<NullChild, NullError> {
        let exe = std::env::current_exe().map_err(NullError::Spawn)?;
        let mut command = tokio::process::Command::new(exe);
        command.args([
            "baseline",
            "null-responder",
            "--listen",
            "127.0.0.1:0",
            "--fanout",
            fanout.as_str(),
            "--lifetime",
            &lifetime.as_secs().max(1).to_string(),
        ]);
        let tls_dir = tls
            .then(|| std::env::temp_dir().join(format!("perch-load-null-{}", std::process::id())));
        if let Some(dir) = &tls_dir {
            command.arg("--tls-dir").arg(dir);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(NullError::Spawn)?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| NullError::Handshake("no stdout".into()))?;
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let read = reader.read_line(&mut line);
        match tokio::time::timeout(Duration::from_secs(15), read).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) => return Err(NullError::Handshake("it exited".into())),
            Ok(Err(e)) => return Err(NullError::Handshake(e.to_string())),
            Err(_) => return Err(NullError::Handshake("no answer within 15 s".into())),
        }
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| NullError::Handshake(format!("unexpected {:?}", line.trim())))?;
        Ok(NullChild {
            child,
            addr,
            pid,
            cert: tls_dir
                .as_ref()
                .map(|d| d.join(perch::net::tls::DEV_CERT_FILE)),
            tls_dir,
        })
    }

    /// Stops the child (it is ours: killed by its handle) and removes its certificate.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Some(dir) = self.tls_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infos_follow_the_dialog() {
        let invite = "INVITE sip:ocschat@x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1\r\nFrom: <sip:a@x>;tag=9\r\nTo: <sip:ocschat@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@x;gruu>\r\n";
        let message = Message::parse(invite.as_bytes(), Bytes::new()).unwrap();
        let mut dialog = dialog_of(&message, "t").unwrap();
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let bytes = info_request(&mut dialog, local, "TCP", 1, Bytes::from_static(b"<x/>"));
        let mut buf = BytesMut::from(&bytes[..]);
        let Some(Frame::Message { head, body }) =
            framer::decode(&mut buf, &FrameLimits::default()).unwrap()
        else {
            panic!("not a message");
        };
        let info = Message::parse(&head, body).unwrap();
        assert_eq!(info.headers.get("From"), Some("<sip:ocschat@x>;tag=t"));
        assert_eq!(info.headers.get("To"), Some("<sip:a@x>;tag=9"));
        assert_eq!(info.headers.get("CSeq"), Some("1 INFO"));
        assert_eq!(&info.body[..], b"<x/>");
    }
}
