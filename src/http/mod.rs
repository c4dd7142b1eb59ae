//! The HTTPS side for operators: `/healthz` (the process answers), `/readyz` (the store
//! takes writes and answers reads) and `/metrics` (Prometheus text). It serves the SIP
//! listeners' certificate, and a SIGHUP's new certificate at once, like them.
//!
//! Off unless `http.listen` is set; `--demo` turns it on at 127.0.0.1:8443. The admin API
//! (`api`) is on the same listener.

pub mod api;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::core::manage::ManageError;
use crate::core::ports::{Store, StoreError};
use crate::core::service::ServiceError;

/// TLS handshakes under way at once; more connections wait in the kernel's queue.
const MAX_HANDSHAKES: usize = 64;
/// How long a readiness probe waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub struct HttpState {
    pub store: Arc<dyn Store>,
    /// The database file, whose size (and its WAL's) `/metrics` reports.
    pub database: PathBuf,
    /// Failed sign-ins, shared with SIP: the room page's password form counts here too.
    pub throttle: Arc<crate::net::signin::FailureThrottle>,
    pub domain: String,
}

struct Shared {
    state: HttpState,
    registry: Registry,
    store_bytes: Gauge,
}

pub fn router(state: HttpState) -> Router {
    let mut registry = Registry::with_prefix("perch");
    crate::core::metrics::metrics().register(&mut registry);
    crate::net::metrics::metrics().register(&mut registry);
    let store_bytes = Gauge::default();
    registry.register(
        "store_bytes",
        "Size of the store on disk (database and write-ahead log)",
        store_bytes.clone(),
    );
    let api = api::router(state.store.clone());
    let web = web::router(web::WebState {
        store: state.store.clone(),
        throttle: state.throttle.clone(),
        domain: state.domain.clone(),
    });
    let shared = Arc::new(Shared {
        state,
        registry,
        store_bytes,
    });
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(shared)
        .merge(api)
        .merge(web)
}

/// The one mapping from the service's typed errors to HTTP statuses, for the admin API
/// and the room page alike.
pub(crate) fn status_of(error: &ServiceError) -> StatusCode {
    match error {
        ServiceError::Invalid(_) | ServiceError::Manage(ManageError::Invalid(_)) => {
            StatusCode::BAD_REQUEST
        }
        ServiceError::Manage(ManageError::NotFound(_)) => StatusCode::NOT_FOUND,
        ServiceError::Manage(ManageError::Duplicate(_)) => StatusCode::CONFLICT,
        ServiceError::Denied(_) => StatusCode::FORBIDDEN,
        ServiceError::Store(StoreError::Duplicate(_) | StoreError::Conflict(_)) => {
            StatusCode::CONFLICT
        }
        ServiceError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
        ServiceError::Store(StoreError::QuotaExceeded(_)) => StatusCode::FORBIDDEN,
        ServiceError::Store(
            StoreError::Overloaded | StoreError::Full | StoreError::TimedOut { .. },
        ) => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let store = shared.state.store.clone();
    let check = tokio::task::spawn_blocking(move || store.ready());
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(Ok(()))) => (StatusCode::OK, "ready\n".to_owned()),
        Ok(Ok(Err(error))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: store: {error}\n"),
        ),
        Ok(Err(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {error}\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the store did not answer within 2 s\n".to_owned(),
        ),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut wal = shared.state.database.clone().into_os_string();
    wal.push("-wal");
    let bytes: u64 = [shared.state.database.clone(), PathBuf::from(wal)]
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum();
    shared
        .store_bytes
        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &shared.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode the metrics: {error}\n"),
        ),
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    acceptor: watch::Receiver<TlsAcceptor>,
    handshake_timeout: Duration,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (ready, handshaken) = mpsc::channel(MAX_HANDSHAKES);
    let accepting = tokio::spawn(handshakes(
        listener,
        acceptor,
        handshake_timeout,
        ready,
        shutdown.clone(),
    ));
    let listener = TlsListener { handshaken, local };
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    // The peer's address reaches handlers: the room page's sign-in throttle counts by it.
    let service = router.into_make_service_with_connect_info::<Peer>();
    if let Err(error) = axum::serve(listener, service)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(%error, "HTTPS listener stopped");
    }
    accepting.abort();
}

/// Accepts connections and runs their TLS handshakes, each in a task of its own (a slow
/// client holds only its own), handing finished ones to the HTTP server.
async fn handshakes(
    listener: TcpListener,
    acceptor: watch::Receiver<TlsAcceptor>,
    timeout: Duration,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.borrow().clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "HTTPS handshake failed"),
                Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
            }
        });
    }
}

/// The client's address, as handlers extract it (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The accepting task is gone (shutdown): wait for the graceful stop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
