//! Where the load goes: loopback only. Parses and checks the target address, builds the
//! kit's connector (`perch::lync::client::Connector`) with the server's certificate pinned,
//! and picks the loopback source address of each connection so that a server's
//! per-address connection cap does not apply to us as a whole.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use perch::lync::client::{self as kit, Stream, Trust, WireError};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "{0} is not a loopback address: perch-load only loads 127.0.0.0/8 or ::1 (it is a benchmark for this machine, not a traffic generator)"
    )]
    NotLoopback(String),
    #[error("{0:?} is not an address with a port (e.g. 127.0.0.1:5060 or [::1]:5061)")]
    Unparsable(String),
    #[error("cannot load the pinned certificate {path}: {message}")]
    Certificate { path: String, message: String },
}

/// Parses `ADDR:PORT` (or `localhost:PORT`) and refuses anything but loopback.
pub fn parse_loopback(text: &str) -> Result<SocketAddr, TargetError> {
    let text = text.trim();
    let addr = match text.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| TargetError::Unparsable(text.to_owned()))?,
        None => text
            .parse::<SocketAddr>()
            .map_err(|_| TargetError::Unparsable(text.to_owned()))?,
    };
    if !addr.ip().is_loopback() {
        return Err(TargetError::NotLoopback(addr.ip().to_string()));
    }
    Ok(addr)
}

/// The default target of a transport: perch's conventional loopback ports.
pub fn default_target(tls: bool) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, if tls { 5061 } else { 5060 }))
}

/// Opens connections to one loopback target, over TCP or TLS with a pinned certificate,
/// spread over loopback source addresses.
pub struct Connector {
    kit: kit::Connector,
    /// Connections per loopback source address; 0 keeps the system's choice.
    per_source: usize,
}

impl Connector {
    pub fn new(
        target: SocketAddr,
        pinned_cert: Option<&Path>,
        per_source: usize,
        connect_timeout: Duration,
    ) -> Result<Self, TargetError> {
        let kit = match pinned_cert {
            // The development certificate names localhost and the loopback addresses.
            Some(path) => kit::Connector::tls(
                target,
                "localhost",
                &Trust::File(path.to_owned()),
                connect_timeout,
            )
            .map_err(|e| TargetError::Certificate {
                path: path.display().to_string(),
                message: e.to_string(),
            })?,
            None => kit::Connector::tcp(target, connect_timeout),
        };
        Ok(Self { kit, per_source })
    }

    /// The kit's connector, for a client of the kit.
    pub fn kit(&self) -> &kit::Connector {
        &self.kit
    }

    pub fn transport(&self) -> &'static str {
        self.kit.transport()
    }

    /// The loopback address connection number `index` binds to: 127.0.0.1 for the first
    /// `per_source` connections, 127.0.0.2 for the next, and so on (all of 127.0.0.0/8
    /// is the loopback interface on Linux). IPv6 has only ::1.
    pub fn source_for(&self, index: usize) -> Option<IpAddr> {
        if self.per_source == 0 || !self.kit.target.is_ipv4() {
            return None;
        }
        let step = u32::try_from(index / self.per_source).ok()?;
        // 127.0.0.1 + step stays inside 127.0.0.0/8 for 16 million steps.
        let ip = u32::from(Ipv4Addr::new(127, 0, 0, 1)).checked_add(step % 0x00ff_fffe)?;
        Some(IpAddr::V4(Ipv4Addr::from(ip)))
    }

    /// Connects (and shakes hands, for TLS) within the connect timeout.
    pub async fn connect(
        &self,
        source: Option<IpAddr>,
    ) -> Result<(Box<dyn Stream>, SocketAddr), WireError> {
        self.kit.connect(source).await
    }

    /// A TCP connection to the target with nothing on it yet, not even TLS.
    pub async fn connect_raw(&self, source: Option<IpAddr>) -> Result<TcpStream, WireError> {
        self.kit.connect_raw(source).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_accepted() {
        for ok in [
            "127.0.0.1:5060",
            "127.9.8.7:1",
            "[::1]:5061",
            "localhost:5060",
        ] {
            assert!(parse_loopback(ok).is_ok(), "{ok}");
        }
        for refused in [
            "10.0.0.1:5060",
            "0.0.0.0:5060",
            "[::]:5061",
            "192.168.1.1:5061",
        ] {
            assert!(
                matches!(parse_loopback(refused), Err(TargetError::NotLoopback(_))),
                "{refused}"
            );
        }
        assert!(matches!(
            parse_loopback("example.test:5060"),
            Err(TargetError::Unparsable(_))
        ));
    }

    #[test]
    fn sources_spread_over_loopback() {
        let c = Connector::new(default_target(false), None, 2, Duration::from_secs(1)).unwrap();
        let ips: Vec<_> = (0..5)
            .map(|i| c.source_for(i).unwrap().to_string())
            .collect();
        assert_eq!(
            ips,
            [
                "127.0.0.1",
                "127.0.0.1",
                "127.0.0.2",
                "127.0.0.2",
                "127.0.0.3"
            ]
        );
        let none = Connector::new(default_target(false), None, 0, Duration::from_secs(1)).unwrap();
        assert_eq!(none.source_for(7), None);
    }
}
