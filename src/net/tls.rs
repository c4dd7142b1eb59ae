//! TLS server configuration (rustls, ring provider only) and the self-signed development
//! certificate generated on first start when none is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: String, message: String },
    #[error("cannot generate a development certificate: {0}")]
    Generate(String),
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

pub const DEV_CERT_FILE: &str = "dev-cert.pem";
pub const DEV_KEY_FILE: &str = "dev-key.pem";

/// Certificate and key files to serve with.
#[derive(Debug, Clone)]
pub struct CertificatePaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes sure a development certificate exists in `data_dir`, generating one for `domain`
/// (its subject's common name) valid for the domain, `names`, localhost and the loopback
/// addresses, if it does not.
pub fn ensure_dev_certificate(
    data_dir: &Path,
    domain: &str,
    names: &[String],
) -> Result<CertificatePaths, TlsError> {
    let paths = CertificatePaths {
        cert: data_dir.join(DEV_CERT_FILE),
        key: data_dir.join(DEV_KEY_FILE),
    };
    if paths.cert.exists() && paths.key.exists() {
        return Ok(paths);
    }
    let mut subject_names: Vec<String> = vec![domain.to_owned()];
    for name in names
        .iter()
        .map(String::as_str)
        .chain(["localhost", "127.0.0.1", "::1"])
    {
        if !subject_names.iter().any(|known| known == name) {
            subject_names.push(name.to_owned());
        }
    }
    let generate = || -> Result<(String, String), rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(subject_names)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, domain);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (cert_pem, key_pem) = generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::create_dir_all(data_dir).map_err(|source| TlsError::Write {
        path: data_dir.display().to_string(),
        source,
    })?;
    write_private(&paths.key, key_pem.as_bytes())?;
    std::fs::write(&paths.cert, cert_pem).map_err(|source| TlsError::Write {
        path: paths.cert.display().to_string(),
        source,
    })?;
    tracing::info!(cert = %paths.cert.display(), "generated a self-signed development certificate");
    Ok(paths)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let error = |source| TlsError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut file = options.open(path).map_err(error)?;
    file.write_all(contents).map_err(error)
}

pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            message: "no certificate found".into(),
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> TlsError {
    match error {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Read {
            path: path.display().to_string(),
            source,
        },
        other => TlsError::Pem {
            path: path.display().to_string(),
            message: other.to_string(),
        },
    }
}

/// SHA-256 fingerprint of a certificate, colon-separated upper-case hex, as browsers and
/// `openssl x509 -fingerprint -sha256` print it.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn server_config(paths: &CertificatePaths) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certificates(&paths.cert)?;
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|e| pem_error(&paths.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}
