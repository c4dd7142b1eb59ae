//! Opening a client connection: TCP, or TLS that trusts given certificates (a pinned
//! self-signed one, a private CA) or the system's roots, with a connect timeout, from an
//! optional source address.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use super::wire::{Stream, WireError};

/// Where the system keeps its CA bundle, on the distributions perch is packaged for.
/// `SSL_CERT_FILE` comes first, as OpenSSL reads it.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot load the certificate {path}: {message}")]
    Certificate { path: String, message: String },
    #[error("no system CA bundle found (set SSL_CERT_FILE, or give the certificate to trust)")]
    NoSystemRoots,
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
}

/// Which certificates a TLS client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's CA bundle.
    System,
    /// Exactly the certificates in this PEM file (a server's self-signed certificate, or
    /// a private CA).
    File(PathBuf),
}

/// Opens connections to one server, over TCP or TLS.
pub struct Connector {
    pub target: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
}

impl Connector {
    /// Plain TCP to `target`.
    pub fn tcp(target: SocketAddr, connect_timeout: Duration) -> Self {
        Self {
            target,
            tls: None,
            connect_timeout,
        }
    }

    /// TLS to `target`, whose certificate must name `server_name` (a DNS name or an IP
    /// address) and chain to what `trust` says.
    pub fn tls(
        target: SocketAddr,
        server_name: &str,
        trust: &Trust,
        connect_timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| ConnectError::ServerName(server_name.to_owned()))?;
        Ok(Self {
            target,
            tls: Some((TlsConnector::from(client_config(trust)?), name)),
            connect_timeout,
        })
    }

    pub fn transport(&self) -> &'static str {
        if self.tls.is_some() { "tls" } else { "tcp" }
    }

    /// Connects (and shakes hands, for TLS) within the connect timeout; returns the stream
    /// and our address.
    pub async fn connect(
        &self,
        source: Option<IpAddr>,
    ) -> Result<(Box<dyn Stream>, SocketAddr), WireError> {
        let tcp = self.connect_raw(source).await?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().map_err(WireError::Connect)?;
        let Some((tls, name)) = &self.tls else {
            return Ok((Box::new(tcp), local));
        };
        let stream = tokio::time::timeout(self.connect_timeout, tls.connect(name.clone(), tcp))
            .await
            .map_err(|_| WireError::ConnectTimeout)?
            .map_err(WireError::Tls)?;
        Ok((Box::new(stream), local))
    }

    /// A TCP connection to the target with nothing on it yet, not even TLS.
    pub async fn connect_raw(&self, source: Option<IpAddr>) -> Result<TcpStream, WireError> {
        tokio::time::timeout(self.connect_timeout, self.open_tcp(source))
            .await
            .map_err(|_| WireError::ConnectTimeout)?
            .map_err(WireError::Connect)
    }

    async fn open_tcp(&self, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
        let socket = if self.target.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(self.target).await
    }
}

/// A TLS client configuration trusting what `trust` says (ring, TLS 1.2 and 1.3, no
/// client certificate).
pub fn client_config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let path = match trust {
        Trust::File(path) => path.clone(),
        Trust::System => system_bundle().ok_or(ConnectError::NoSystemRoots)?,
    };
    let error = |message: String| ConnectError::Certificate {
        path: path.display().to_string(),
        message,
    };
    let certs = crate::net::tls::load_certificates(&path).map_err(|e| error(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Trust::File(_) => {
            for cert in certs {
                roots.add(cert).map_err(|e| error(e.to_string()))?;
            }
        }
        // A bundle may hold certificates this rustls cannot use; the rest serve.
        Trust::System => {
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(error("no usable CA certificate".into()));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The system's CA bundle: `SSL_CERT_FILE`, else the first of the usual places that exists.
fn system_bundle() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find(|path| Path::new(path).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_certificate_and_a_bad_name_are_errors() {
        let target: SocketAddr = "127.0.0.1:5061".parse().unwrap();
        let missing = Trust::File("/nonexistent/perch-cert.pem".into());
        let error = Connector::tls(target, "localhost", &missing, Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("/nonexistent/perch-cert.pem"),
            "{error}"
        );
        let dir = std::env::temp_dir().join(format!("perch-connect-{}", std::process::id()));
        let paths = crate::net::tls::ensure_dev_certificate(&dir, "example.test", &[]).unwrap();
        let trust = Trust::File(paths.cert.clone());
        assert!(Connector::tls(target, "127.0.0.1", &trust, Duration::from_secs(1)).is_ok());
        assert!(matches!(
            Connector::tls(target, "not a name", &trust, Duration::from_secs(1)),
            Err(ConnectError::ServerName(_))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
