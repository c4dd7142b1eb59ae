//! Assembles a running server from a configuration: store, directory, chat endpoint,
//! listeners, background refresh, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::app::config::Config;
use crate::core::SnapshotHandle;
use crate::core::hub::ChatCore;
use crate::core::ports::{Store, StoreError};
use crate::core::snapshot::{revoked_users, unlocked_users};
use crate::lync::session::sipae::NtlmSettings;
use crate::lync::session::{LyncProtocol, Outboxes, SessionSettings, Shared};
use crate::lync::sip::FrameLimits;
use crate::lync::xccos::XccosEndpoint;
use crate::lync::xccos::endpoint::EndpointSettings;
use crate::lync::xccos::xml::XmlLimits;
use crate::net::limits::ConnectionLimits;
use crate::net::tls::{self, CertificatePaths, TlsError};
use crate::net::{DriverSettings, Transport, accept_loop};
use crate::store::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("key `{key}`: cannot listen on {addr}: {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("keys `tls.cert` and `tls.key`: {0}")]
    Certificate(TlsError),
}

/// What `serve` takes and checks before it touches the data directory: the listening
/// sockets and a configured certificate. A port in use or a missing certificate then stops
/// perch with nothing created.
pub struct Prepared {
    tls: Option<std::net::TcpListener>,
    tcp: Option<std::net::TcpListener>,
    http: Option<std::net::TcpListener>,
    xmpp: Option<std::net::TcpListener>,
    xmpp_tls: Option<std::net::TcpListener>,
    certificate: Option<(CertificatePaths, Arc<rustls::ServerConfig>)>,
}

pub fn prepare(config: &Config) -> Result<Prepared, ServeError> {
    let bind = |key, addr: Option<SocketAddr>| {
        addr.map(|addr| {
            std::net::TcpListener::bind(addr)
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                .map_err(|source| ServeError::Bind { key, addr, source })
        })
        .transpose()
    };
    let tls_wanted = config.listen.tls.is_some()
        || config.http.listen.is_some()
        || config.xmpp.listen.is_some()
        || config.xmpp.listen_tls.is_some();
    let certificate = match (&config.tls.cert, &config.tls.key, tls_wanted) {
        (Some(cert), Some(key), true) => {
            let paths = CertificatePaths {
                cert: cert.clone(),
                key: key.clone(),
            };
            let tls_config = tls::server_config(&paths).map_err(ServeError::Certificate)?;
            Some((paths, tls_config))
        }
        _ => None,
    };
    Ok(Prepared {
        tls: bind("listen.tls", config.listen.tls)?,
        tcp: bind("listen.tcp", config.listen.tcp)?,
        http: bind("http.listen", config.http.listen)?,
        xmpp: bind("xmpp.listen", config.xmpp.listen)?,
        xmpp_tls: bind("xmpp.listen_tls", config.xmpp.listen_tls)?,
        certificate,
    })
}

pub struct RunningServer {
    tls_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    xmpp_addr: Option<SocketAddr>,
    xmpp_tls_addr: Option<SocketAddr>,
    certificate: Option<CertificatePaths>,
    /// What the TLS listener hands new connections; replaced by `reload_certificate`.
    tls_acceptor: Option<watch::Sender<TlsAcceptor>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    store: Arc<dyn Store>,
}

impl RunningServer {
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The XMPP listener whose streams upgrade with STARTTLS, when configured.
    pub fn xmpp_addr(&self) -> Option<SocketAddr> {
        self.xmpp_addr
    }

    /// The XMPP listener in direct TLS (XEP-0368), when configured.
    pub fn xmpp_tls_addr(&self) -> Option<SocketAddr> {
        self.xmpp_tls_addr
    }

    /// The HTTPS listener (health, readiness, metrics), when configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The certificate being served over TLS.
    pub fn certificate(&self) -> Option<&CertificatePaths> {
        self.certificate.as_ref()
    }

    /// Reads the certificate and key again (the configured files, or the generated ones)
    /// and serves them to every new TLS connection; connections already up keep theirs.
    /// On an error the certificate in use stays.
    pub fn reload_certificate(&mut self, config: &Config) -> Result<(), ServeError> {
        let Some(sender) = &self.tls_acceptor else {
            return Ok(());
        };
        let paths = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => CertificatePaths {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => tls::ensure_dev_certificate(
                &config.data_dir,
                &config.domain,
                &config.tls.dev_cert_names,
            )?,
        };
        let tls_config = tls::server_config(&paths).map_err(ServeError::Certificate)?;
        let fingerprint = tls::load_certificates(&paths.cert)?
            .first()
            .map(tls::fingerprint)
            .unwrap_or_default();
        sender.send_replace(TlsAcceptor::from(tls_config));
        // Logged once in use: a handshake after this line gets the new certificate.
        tracing::info!(cert = %paths.cert.display(), sha256 = %fingerprint, "TLS certificate reloaded");
        self.certificate = Some(paths);
        Ok(())
    }

    /// Stops accepting, lets connections finish the message in hand, then flushes the store.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

/// The chat core over `store` with the Lync gateway attached: what `start` serves, and
/// what the session tests and the session fuzz target drive without sockets.
pub struct Assembled {
    pub model: Arc<SnapshotHandle>,
    pub core: Arc<ChatCore>,
    pub lync: Arc<Shared>,
}

pub fn assemble(config: &Config, store: Arc<dyn Store>) -> Result<Assembled, StoreError> {
    let model = Arc::new(SnapshotHandle::load(store.as_ref())?);
    let core = Arc::new(ChatCore::new(model.clone(), store)?);
    let outboxes = Arc::new(Outboxes::default());
    let endpoint = Arc::new(XccosEndpoint::new(
        core.clone(),
        outboxes.clone(),
        endpoint_settings(config),
    ));
    let lync = Arc::new(Shared::new(
        session_settings(config),
        model.clone(),
        outboxes,
        endpoint,
    ));
    Ok(Assembled { model, core, lync })
}

/// Binds, then starts serving `store` (what tests and benchmarks call).
pub async fn start(config: &Config, store: Arc<dyn Store>) -> Result<RunningServer, ServeError> {
    start_prepared(config, store, prepare(config)?).await
}

pub async fn start_prepared(
    config: &Config,
    store: Arc<dyn Store>,
    prepared: Prepared,
) -> Result<RunningServer, ServeError> {
    let Assembled { model, core, lync } = assemble(config, store.clone())?;
    let session_shared = lync.clone();
    let lync = Arc::new(LyncProtocol::new(lync));
    let settings = DriverSettings {
        handshake_timeout: Duration::from_secs(config.limits.tls_handshake_timeout_secs),
        idle_timeout: Duration::from_secs(config.limits.idle_timeout_secs),
        message_timeout: Duration::from_secs(config.limits.message_timeout_secs),
        outgoing_queue: config.limits.outgoing_queue,
    };
    // Shared by both listeners: the caps count every connection.
    let limits = ConnectionLimits::new(
        config.limits.max_connections,
        config.limits.max_connections_per_address,
    );
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut server = RunningServer {
        tls_addr: None,
        tcp_addr: None,
        http_addr: None,
        xmpp_addr: None,
        xmpp_tls_addr: None,
        certificate: None,
        tls_acceptor: None,
        shutdown,
        tasks: JoinSet::new(),
        store: store.clone(),
    };

    // One certificate for SIP over TLS and HTTPS; a SIGHUP replaces it for both.
    let current_tls = if prepared.tls.is_some()
        || prepared.http.is_some()
        || prepared.xmpp.is_some()
        || prepared.xmpp_tls.is_some()
    {
        let (paths, tls_config) = match prepared.certificate {
            Some(configured) => configured,
            None => {
                let paths = tls::ensure_dev_certificate(
                    &config.data_dir,
                    &config.domain,
                    &config.tls.dev_cert_names,
                )?;
                let tls_config = tls::server_config(&paths)?;
                (paths, tls_config)
            }
        };
        if let Some(cert) = tls::load_certificates(&paths.cert)?.first() {
            tracing::info!(cert = %paths.cert.display(), sha256 = %tls::fingerprint(cert), "TLS certificate");
        }
        server.certificate = Some(paths);
        let (acceptor, current) = watch::channel(TlsAcceptor::from(tls_config));
        server.tls_acceptor = Some(acceptor);
        Some(current)
    } else {
        None
    };
    if let (Some(listener), Some(current)) = (prepared.tls, &current_tls) {
        let listener = tokio_listener(listener, "listen.tls")?;
        server.tls_addr = listener.local_addr().ok();
        if let Some(addr) = server.tls_addr {
            tracing::info!(%addr, "listening for SIP over TLS");
        }
        tasks.spawn(accept_loop(
            listener,
            Transport::Tls,
            Some(current.clone()),
            lync.clone(),
            settings,
            limits.clone(),
            shutdown_rx.clone(),
        ));
    }
    if let (Some(listener), Some(current)) = (prepared.http, &current_tls) {
        let listener = tokio_listener(listener, "http.listen")?;
        server.http_addr = listener.local_addr().ok();
        if let Some(addr) = server.http_addr {
            tracing::info!(%addr, "listening for HTTPS (health, metrics, admin API, room page)");
        }
        let router = crate::http::router(crate::http::HttpState {
            store: store.clone(),
            database: config.data_dir.join(crate::store::sqlite::DATABASE_FILE),
            throttle: session_shared.throttle.clone(),
            domain: config.domain.clone(),
        });
        tasks.spawn(crate::http::serve(
            listener,
            current.clone(),
            settings.handshake_timeout,
            router,
            shutdown_rx.clone(),
        ));
    }
    if let Some(listener) = prepared.tcp {
        let listener = tokio_listener(listener, "listen.tcp")?;
        server.tcp_addr = listener.local_addr().ok();
        if let Some(addr) = server.tcp_addr {
            tracing::info!(%addr, "listening for SIP over plain TCP");
        }
        tasks.spawn(accept_loop(
            listener,
            Transport::Tcp,
            None,
            lync.clone(),
            settings,
            limits.clone(),
            shutdown_rx.clone(),
        ));
    }
    if prepared.xmpp.is_some() || prepared.xmpp_tls.is_some() {
        let xmpp = Arc::new(crate::xmpp::XmppProtocol::new(
            xmpp_settings(config),
            core.clone(),
            store.clone(),
            session_shared.throttle.clone(),
        ));
        tasks.spawn(xmpp.clone().sweep_parked(shutdown_rx.clone()));
        let listeners = [
            (
                prepared.xmpp,
                Transport::Tcp,
                "xmpp.listen",
                "listening for XMPP (STARTTLS)",
            ),
            (
                prepared.xmpp_tls,
                Transport::Tls,
                "xmpp.listen_tls",
                "listening for XMPP over TLS",
            ),
        ];
        for (listener, transport, key, what) in listeners {
            let (Some(listener), Some(current)) = (listener, &current_tls) else {
                continue;
            };
            let listener = tokio_listener(listener, key)?;
            let addr = listener.local_addr().ok();
            match transport {
                Transport::Tcp => server.xmpp_addr = addr,
                Transport::Tls => server.xmpp_tls_addr = addr,
            }
            if let Some(addr) = addr {
                tracing::info!(%addr, "{what}");
            }
            // A plain listener holds the acceptor too: its streams upgrade with STARTTLS.
            tasks.spawn(accept_loop(
                listener,
                transport,
                Some(current.clone()),
                xmpp.clone(),
                settings,
                limits.clone(),
                shutdown_rx.clone(),
            ));
        }
    }
    tasks.spawn(follow_changes(
        model,
        core,
        session_shared,
        store,
        shutdown_rx,
    ));
    server.tasks = tasks;
    Ok(server)
}

fn tokio_listener(
    listener: std::net::TcpListener,
    key: &'static str,
) -> Result<TcpListener, ServeError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    TcpListener::from_std(listener).map_err(|source| ServeError::Bind { key, addr, source })
}

/// The XMPP side's settings from the configuration (also what the c2s fuzz target runs with).
pub fn xmpp_settings(config: &Config) -> crate::xmpp::XmppSettings {
    let defaults = crate::xmpp::stream::StreamLimits::default();
    let limits = crate::xmpp::stream::StreamLimits {
        max_stanza_bytes: config.xmpp.max_stanza_bytes,
        xml: crate::xml::XmlLimits {
            max_value_bytes: config.xmpp.max_stanza_bytes,
            ..defaults.xml
        },
        ..defaults
    };
    crate::xmpp::XmppSettings {
        domain: config.domain.to_ascii_lowercase(),
        muc_domain: config.muc_domain().to_ascii_lowercase(),
        require_tls: config.xmpp.require_tls,
        limits,
        stanzas_per_second: config.limits.requests_per_second,
        stanza_burst: config.limits.request_burst,
        stanzas_per_second_per_user: config.limits.requests_per_second_per_user,
        stanza_burst_per_user: config.limits.request_burst_per_user,
        resume_wait: Duration::from_secs(config.xmpp.resume_seconds),
        resume_buffer_bytes: config.xmpp.resume_buffer_bytes,
    }
}

fn session_settings(config: &Config) -> SessionSettings {
    let auth = &config.auth;
    SessionSettings {
        domain: config.domain.clone(),
        chat_aor: config.chat_aor(),
        room_management_url: config.room_management_url(),
        trusted_networks: config.trusted_networks.clone(),
        default_expires: config.registrar.default_expires_secs,
        min_expires: config.registrar.min_expires_secs,
        max_expires: config.registrar.max_expires_secs,
        keep_alive_secs: config.registrar.keep_alive_secs,
        session_expires: config.session.session_expires_secs,
        transaction_timeout: Duration::from_secs(config.session.transaction_timeout_secs),
        requests_per_second: config.limits.requests_per_second,
        requests_per_second_per_user: config.limits.requests_per_second_per_user,
        request_burst_per_user: config.limits.request_burst_per_user,
        retransmission_bytes_per_connection: config.limits.retransmission_bytes_per_connection,
        retransmission_bytes_total: config.limits.retransmission_bytes_total,
        max_dialogs_per_connection: config.limits.max_dialogs_per_connection,
        max_dialogs_per_user: config.limits.max_dialogs_per_user,
        max_dialog_header_bytes: config.limits.max_dialog_header_bytes,
        request_burst: config.limits.request_burst,
        frame_limits: FrameLimits {
            max_header_bytes: config.limits.max_header_bytes,
            max_headers: config.limits.max_headers,
            max_body_bytes: config.limits.max_body_bytes,
        },
        ntlm: auth.ntlm.then(|| NtlmSettings {
            association_lifetime: Duration::from_secs(auth.ntlm_association_lifetime_secs),
            ..NtlmSettings::new(
                &config.domain,
                auth.ntlm_target_name.as_deref().unwrap_or(&config.domain),
                &auth.ntlm_domains,
            )
        }),
        nonce_lifetime: Duration::from_secs(auth.nonce_lifetime_secs),
        challenges_per_address: auth.challenges_per_second_per_address,
        challenges_per_network: auth.challenges_per_second_per_network,
        failure_window: Duration::from_secs(auth.failure_window_secs),
        max_failures_per_address: auth.max_failures_per_address,
        max_failures_per_user: auth.max_failures_per_user,
    }
}

fn endpoint_settings(config: &Config) -> EndpointSettings {
    EndpointSettings {
        domain: config.domain.clone(),
        chat_uri: format!("sip:{}", config.chat_aor()),
        max_bjoin: config.limits.max_rooms_per_bjoin,
        limits: XmlLimits {
            max_depth: config.limits.xml_max_depth,
            max_elements: config.limits.xml_max_elements,
            max_attributes: config.limits.xml_max_attributes,
            max_value_bytes: config.limits.xml_max_value_bytes,
        },
    }
}

/// Reloads the model when the store's change feed moves (a change by `perch admin`, by
/// this process, or later by another node) and takes sessions out of rooms they may no
/// longer be in.
async fn follow_changes(
    model: Arc<SnapshotHandle>,
    core: Arc<ChatCore>,
    lync: Arc<Shared>,
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = store.changes();
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let before = model.snapshot();
        let (handle, reader) = (model.clone(), store.clone());
        match tokio::task::spawn_blocking(move || handle.reload(reader.as_ref())).await {
            Ok(Ok(())) => {
                tracing::info!("configuration reloaded after an administrative change");
                let revoked = revoked_users(&before, &model.snapshot());
                if !revoked.is_empty() {
                    lync.revoke(&revoked);
                }
                let unlocked = unlocked_users(&before, &model.snapshot());
                if !unlocked.is_empty() {
                    lync.unlock(&unlocked);
                }
                core.reconcile();
                // Invitations are administrative changes too: this one may have made some.
                if let Err(error) = core.deliver_invitations().await {
                    tracing::warn!(%error, "cannot deliver new invitations");
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot reload the configuration"),
            Err(error) => tracing::warn!(%error, "configuration reload task failed"),
        }
    }
}

/// Opens the SQLite store in the configured data directory.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::open(&config.data_dir)?))
}
