//! The network layer, the same for every protocol: listeners, TLS, per-address and total
//! connection caps, and one task per connection that reads bytes, hands them to the
//! protocol's sans-I/O [`Connection`], writes what it produces in one write per turn, runs
//! its deferred work in order, and enforces the handshake, idle and message timeouts and
//! the outbox cut-off. It knows no protocol: SIP plugs in through [`Protocol`], and XMPP
//! will plug in the same way with the same defences.

pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod rate;
pub mod signin;
pub mod tls;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use self::limits::ConnectionLimits;
use self::outbox::Outboxes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tls,
    Tcp,
}

#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub transport: Transport,
}

/// Work a connection finishes later (an answer that waits for a commit); its result goes
/// back to [`Connection::finish_deferred`].
pub struct Deferred<A> {
    pub id: u64,
    pub work: Pin<Box<dyn Future<Output = A> + Send>>,
}

/// What the driver should do next.
pub enum Output<A> {
    Send(Bytes),
    /// Close after writing what was queued before.
    Close,
    Await(Deferred<A>),
    /// Write what was queued before (the protocol's "go ahead"), then turn this plain
    /// connection into TLS as its server (XMPP's STARTTLS). Then [`Connection::secured`].
    StartTls,
}

/// One protocol: how to open its side of a connection and where its deliveries queue.
pub trait Protocol: Send + Sync + 'static {
    /// The protocol's name in metrics and logs (`sip`, `xmpp`).
    const NAME: &'static str;
    type Connection: Connection<Delivery = Self::Delivery>;
    /// What the rest of the server sends a connection (a rendered event).
    type Delivery: Send + 'static;

    fn open(&self, info: ConnectionInfo) -> Self::Connection;
    fn outboxes(&self) -> &Arc<Outboxes<Self::Delivery>>;
}

/// A protocol's side of one connection, sans-I/O: bytes and time in, outputs out.
pub trait Connection: Send {
    type Delivery;
    /// The result of deferred work.
    type Answer: Send + 'static;

    /// Consumes every complete message at the front of `buffer`, leaving a partial one.
    /// Returns false once the stream cannot be read any further (a framing error); the
    /// outputs then say what to answer before closing.
    fn receive(&mut self, buffer: &mut BytesMut, now: Instant) -> bool;
    fn deliver(&mut self, delivery: Self::Delivery, now: Instant);
    fn finish_deferred(&mut self, id: u64, answer: Self::Answer, now: Instant);
    /// When [`Connection::tick`] next has something to do.
    fn next_deadline(&mut self) -> Option<Instant>;
    fn tick(&mut self, now: Instant);
    fn take_outputs(&mut self) -> Vec<Output<Self::Answer>>;
    /// The TLS handshake that [`Output::StartTls`] asked for has completed.
    fn secured(&mut self, _now: Instant) {}
    /// The connection is gone. A protocol whose session outlives its connection (XMPP
    /// stream resumption) may keep `mailbox`: deliveries go on queuing in it, and the
    /// protocol unregisters it when the session ends.
    fn closed(&mut self, mailbox: outbox::Mailbox<Self::Delivery>) -> Retention;
}

/// Whether a closed connection's protocol kept its mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// The driver unregisters it.
    Released,
    Kept,
}

/// Settings the driver takes from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct DriverSettings {
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub message_timeout: Duration,
    pub outgoing_queue: usize,
}

/// Requests of one connection whose answers may wait at once (posts awaiting their commit).
/// Reading pauses at the cap, which pushes back on a client that outruns the store.
const MAX_DEFERRED: usize = 64;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until `shutdown` turns true, then waits for the connections it
/// started to finish their current message.
/// `acceptor` holds the TLS configuration of the moment: a new certificate sent into it
/// (on SIGHUP) serves the next handshakes, and connections already up keep theirs. On a
/// [`Transport::Tls`] listener every connection starts with a handshake; on a
/// [`Transport::Tcp`] one an acceptor is what [`Output::StartTls`] upgrades with (none: a
/// protocol's request to upgrade closes the connection).
pub async fn accept_loop<P: Protocol>(
    listener: TcpListener,
    transport: Transport,
    acceptor: Option<watch::Receiver<TlsAcceptor>>,
    protocol: Arc<P>,
    settings: DriverSettings,
    limits: Arc<ConnectionLimits>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    // On a dual-stack listener an IPv4 client arrives as ::ffff:a.b.c.d;
                    // everything after this (trusted networks, throttles, logs) sees a.b.c.d.
                    Ok((stream, peer)) => (stream, SocketAddr::new(peer.ip().to_canonical(), peer.port())),
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Over a cap the socket is dropped at once: no TLS handshake, no buffers.
                let slot = match limits.acquire(peer.ip()) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        metrics::metrics().refused.inc();
                        tracing::debug!(%peer, ?refusal, "connection refused: limit reached");
                        continue;
                    }
                };
                let local = stream.local_addr().unwrap_or_else(|_| unspecified());
                let _ = stream.set_nodelay(true);
                let info = ConnectionInfo {
                    id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                    peer,
                    local,
                    transport,
                };
                let acceptor = acceptor.as_ref().map(|current| current.borrow().clone());
                let (protocol, shutdown) = (protocol.clone(), shutdown.clone());
                let label = transport.label(P::NAME);
                metrics::metrics().accepted.get_or_create(&label).inc();
                let open = metrics::metrics().open.get_or_create(&label).clone();
                open.inc();
                connections.spawn(async move {
                    handle_connection(stream, info, acceptor, protocol, settings, shutdown).await;
                    open.dec();
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

async fn handle_connection<P: Protocol>(
    stream: TcpStream,
    info: ConnectionInfo,
    acceptor: Option<TlsAcceptor>,
    protocol: Arc<P>,
    settings: DriverSettings,
    shutdown: watch::Receiver<bool>,
) {
    let handshake = |stream: TcpStream, acceptor: TlsAcceptor| async move {
        match tokio::time::timeout(settings.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(error)) => {
                tracing::debug!(peer = %info.peer, %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %info.peer, "TLS handshake timed out");
                None
            }
        }
    };
    match (info.transport, acceptor) {
        (Transport::Tls, Some(acceptor)) => {
            if let Some(mut tls) = handshake(stream, acceptor).await {
                let mut state = ConnectionState::open(info, &*protocol, &settings);
                drive(&mut tls, &mut state, &settings, shutdown).await;
                state.end();
            }
        }
        (_, acceptor) => {
            let mut stream = stream;
            let mut state = ConnectionState::open(info, &*protocol, &settings);
            let ending = drive(&mut stream, &mut state, &settings, shutdown.clone()).await;
            if ending == Ending::StartTls
                && let Some(acceptor) = acceptor
                && let Some(mut tls) = handshake(stream, acceptor).await
            {
                state.session.secured(Instant::now());
                // Once is enough: a second request over TLS ends the connection.
                drive(&mut tls, &mut state, &settings, shutdown).await;
            }
            state.end();
        }
    }
}

/// The messages as one buffer: the only one as it is, several copied together.
fn coalesce(mut sends: Vec<Bytes>) -> Bytes {
    if sends.len() == 1 {
        return sends.pop().unwrap_or_default();
    }
    let mut joined = BytesMut::with_capacity(sends.iter().map(Bytes::len).sum());
    for bytes in &sends {
        joined.extend_from_slice(bytes);
    }
    joined.freeze()
}

/// The earliest of the idle timeout, the deadline of a message still arriving and the
/// session's own timers.
fn next_wake(
    session: &mut impl Connection,
    settings: &DriverSettings,
    last_heard: Instant,
    partial_since: Option<Instant>,
) -> Instant {
    let idle = last_heard + settings.idle_timeout;
    [
        Some(idle),
        partial_since.map(|since| since + settings.message_timeout),
        session.next_deadline(),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(idle)
}

/// One connection's side of the driver, kept across a STARTTLS upgrade.
struct ConnectionState<P: Protocol> {
    info: ConnectionInfo,
    outboxes: Arc<Outboxes<P::Delivery>>,
    mailbox: outbox::Mailbox<P::Delivery>,
    session: P::Connection,
    buffer: BytesMut,
    last_heard: Instant,
    /// When the bytes of a not yet complete message started to wait in the buffer.
    partial_since: Option<Instant>,
    /// Answered in arrival order; only the oldest is polled, as the others are only
    /// waiting for commits the store makes in the same order.
    deferred: VecDeque<Deferred<<P::Connection as Connection>::Answer>>,
}

impl<P: Protocol> ConnectionState<P> {
    fn open(info: ConnectionInfo, protocol: &P, settings: &DriverSettings) -> Self {
        tracing::debug!(connection = info.id, peer = %info.peer, transport = ?info.transport, "connected");
        let outboxes = protocol.outboxes().clone();
        let mailbox = outboxes.register(info.id, settings.outgoing_queue);
        Self {
            info,
            session: protocol.open(info),
            outboxes,
            mailbox,
            buffer: BytesMut::with_capacity(4096),
            last_heard: Instant::now(),
            partial_since: None,
            deferred: VecDeque::new(),
        }
    }

    fn end(self) {
        let Self {
            info,
            outboxes,
            mailbox,
            mut session,
            ..
        } = self;
        // The protocol decides first: a resumable session keeps what is still queued.
        if session.closed(mailbox) == Retention::Released {
            outboxes.unregister(info.id);
        }
        tracing::debug!(connection = info.id, "disconnected");
    }
}

/// Why [`drive`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Closed,
    /// The protocol asked for TLS, its go-ahead is written, and nothing else waits.
    StartTls,
}

/// Drives one connection over `stream`: read, let the protocol act, write, repeat.
async fn drive<S, P>(
    stream: &mut S,
    state: &mut ConnectionState<P>,
    settings: &DriverSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
    P: Protocol,
{
    let ConnectionState {
        info,
        mailbox,
        session,
        buffer,
        last_heard,
        partial_since,
        deferred,
        ..
    } = state;
    let info = *info;
    // One timer per connection, set to the earliest thing due (idle timeout, a message's
    // deadline, the session's timers), so idle connections cost no wake-ups.
    let wake = tokio::time::sleep_until((Instant::now() + settings.idle_timeout).into());
    tokio::pin!(wake);
    'connection: loop {
        let mut closing = false;
        let mut start_tls = false;
        // Only ever brought forward here: when a later deadline (a read moved the idle
        // timeout) is what the timer fires for, the tick below sets it afresh.
        let due = next_wake(session, settings, *last_heard, *partial_since);
        if due < wake.deadline().into_std() {
            wake.as_mut().reset(due.into());
        }
        tokio::select! {
            read = stream.read_buf(buffer), if deferred.len() < MAX_DEFERRED => {
                match read {
                    Ok(0) | Err(_) => break 'connection,
                    Ok(_) => {}
                }
                let now = Instant::now();
                *last_heard = now;
                let before = buffer.len();
                if !session.receive(buffer, now) {
                    closing = true;
                }
                if buffer.len() < before {
                    // A message was taken: what is left started arriving after it.
                    *partial_since = None;
                }
                if buffer.is_empty() {
                    *partial_since = None;
                } else {
                    partial_since.get_or_insert(now);
                }
            }
            () = &mut wake => {
                let now = Instant::now();
                session.tick(now);
                if now.duration_since(*last_heard) >= settings.idle_timeout {
                    tracing::debug!(connection = info.id, "idle timeout");
                    closing = true;
                }
                if partial_since.is_some_and(|since| now.duration_since(since) >= settings.message_timeout) {
                    tracing::info!(connection = info.id, peer = %info.peer, "closing: a message took too long to arrive");
                    closing = true;
                }
                let due = next_wake(session, settings, *last_heard, *partial_since);
                wake.as_mut().reset(due.into());
            }
            Some(outbound) = mailbox.receiver.recv() => {
                // Take everything already queued, so it goes out in one write and flush.
                let now = Instant::now();
                session.deliver(outbound, now);
                while let Ok(more) = mailbox.receiver.try_recv() {
                    session.deliver(more, now);
                }
            }
            // The guard keeps `deferred[0]` in bounds: the block only runs when polled.
            outcome = async { (&mut deferred[0].work).await }, if !deferred.is_empty() => {
                if let Some(done) = deferred.pop_front() {
                    session.finish_deferred(done.id, outcome, Instant::now());
                }
            }
            _ = mailbox.cut_off.notified() => closing = true,
            _ = shutdown.changed() => closing = true,
        }
        // Deliveries already waiting (a post's echo often is, by the time its answer is
        // ready) go out in the same write as the rest, unless the connection is closing.
        while !closing && let Ok(more) = mailbox.receiver.try_recv() {
            session.deliver(more, Instant::now());
        }
        let mut sends = Vec::new();
        loop {
            let outputs = session.take_outputs();
            if outputs.is_empty() {
                break;
            }
            for output in outputs {
                match output {
                    Output::Send(bytes) => sends.push(bytes),
                    Output::Close => closing = true,
                    // The connection reads on meanwhile, so a client's posts share the
                    // store's commit batches with each other, not only with other clients'.
                    Output::Await(work) => deferred.push_back(work),
                    Output::StartTls => start_tls = true,
                }
            }
        }
        // One write (one system call on TCP, fewer records on TLS) for everything this turn
        // produced. A peer that has gone (SIPE closes right after its BYE) makes writes
        // fail; that only ends this connection. A peer that stops reading would hold this
        // task in the write, out of reach of the outbox cut-off and of shutdown, so the
        // write has the deadline of an incoming message.
        let written = tokio::time::timeout(settings.message_timeout, async {
            if !sends.is_empty() {
                stream.write_all(&coalesce(sends)).await?;
            }
            // TLS buffers records until flushed.
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!(connection = info.id, peer = %info.peer, "closing: the peer stopped reading");
                break;
            }
        }
        if start_tls && !closing {
            // Bytes the client sent after asking for TLS would be read as if they had come
            // over it (the STARTTLS command injection of CVE-2011-0411): refuse them.
            if !buffer.is_empty() || !deferred.is_empty() {
                tracing::info!(connection = info.id, peer = %info.peer, "closing: data after the request for TLS");
                closing = true;
            } else {
                return Ending::StartTls;
            }
        }
        if closing {
            let _ = stream.shutdown().await;
            break;
        }
    }
    Ending::Closed
}

#[cfg(test)]
mod driver_tests;
