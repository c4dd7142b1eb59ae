//! `perch.toml`: every setting with its default, environment overrides, validation.
//! `perch.example.toml` at the repository root documents each key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The SIP domain perch serves; users are `user@domain`.
    pub domain: String,
    /// Where the SQLite store and generated certificates live.
    pub data_dir: PathBuf,
    /// The chat endpoint clients INVITE; default `ocschat@<domain>`.
    pub chat_uri: Option<String>,
    /// Networks whose REGISTER is accepted without a challenge.
    #[serde(deserialize_with = "networks")]
    pub trusted_networks: Vec<IpNet>,
    pub listen: Listen,
    pub http: Http,
    pub xmpp: Xmpp,
    pub tls: Tls,
    pub limits: Limits,
    pub auth: Auth,
    pub registrar: Registrar,
    pub session: Session,
    pub log: Log,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    pub tls: Option<SocketAddr>,
    /// Plain TCP: off unless set (tests, sipp and debugging).
    pub tcp: Option<SocketAddr>,
}

/// XMPP clients (c2s, MUC, MAM) onto the same rooms, with the SIP listeners' certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Xmpp {
    /// Client streams that start plain and upgrade with STARTTLS (RFC 6120), e.g.
    /// `0.0.0.0:5222`. Off unless set.
    pub listen: Option<SocketAddr>,
    /// Client streams in TLS from the first byte (XEP-0368), e.g. `0.0.0.0:5223`.
    pub listen_tls: Option<SocketAddr>,
    /// The MUC service's domain; `conference.<domain>` unless set.
    pub muc_domain: Option<String>,
    /// No sign-in before STARTTLS on `listen` (RFC 6120 §5.3.1).
    pub require_tls: bool,
    /// Largest stanza a client may send, in bytes.
    pub max_stanza_bytes: usize,
    /// XEP-0198 resumption: how long a session whose connection dropped waits for its
    /// client to come back, in seconds (a client may ask for less); 0 turns it off.
    pub resume_seconds: u64,
    /// What perch keeps of a resumable session's stanzas not yet acknowledged by its
    /// client (and delivered while it is away), in bytes; past it the session ends.
    pub resume_buffer_bytes: usize,
}

impl Default for Xmpp {
    fn default() -> Self {
        Self {
            listen: None,
            listen_tls: None,
            muc_domain: None,
            require_tls: true,
            max_stanza_bytes: 256 * 1024,
            resume_seconds: 300,
            resume_buffer_bytes: 256 * 1024,
        }
    }
}

/// The HTTPS side (health, readiness, metrics), with the SIP listeners' certificate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Off unless set, e.g. `127.0.0.1:8443`: what it serves is for operators.
    pub listen: Option<SocketAddr>,
    /// Where clients open the room page (provisioned to Lync as its room management URL).
    /// Unset, it is `https://<listen address>/manage/`, or with the domain as host when
    /// the listener takes every address.
    pub room_management_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Extra names for the generated development certificate.
    pub dev_cert_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: usize,
    pub tls_handshake_timeout_secs: u64,
    /// A connection with no traffic (not even keep-alives) for this long is closed.
    pub idle_timeout_secs: u64,
    /// Server-originated messages queued for one connection before it is cut off.
    pub outgoing_queue: usize,
    /// A message that has started arriving must be complete within this many seconds
    /// (defeats header-by-header slowloris).
    pub message_timeout_secs: u64,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Sustained requests per second one connection may send; more are answered 503.
    pub requests_per_second: u32,
    /// Requests a connection may send in a burst above the sustained rate.
    pub request_burst: u32,
    /// The same for all of one user's connections together, so that many connections
    /// (each within its own rate) cannot do what one may not.
    pub requests_per_second_per_user: u32,
    pub request_burst_per_user: u32,
    /// Rooms one `cmd:bjoin` may name; the rest are refused entry by entry.
    pub max_rooms_per_bjoin: usize,
    /// Chat dialogs one connection may hold, and one user across all their connections
    /// (a real client holds one or two); more INVITEs are answered `403`.
    pub max_dialogs_per_connection: usize,
    pub max_dialogs_per_user: usize,
    /// Bytes of responses kept for retransmission, per connection and in all. Clients do
    /// not retransmit over TCP or TLS, so this only serves the odd duplicate; a duplicate
    /// whose response was let go is dropped, never run twice.
    pub retransmission_bytes_per_connection: usize,
    pub retransmission_bytes_total: usize,
    /// Bytes of From, To and Contact a chat dialog keeps; an INVITE with more gets `400`.
    pub max_dialog_header_bytes: usize,
    /// Nesting depth, elements, attributes per element, and bytes of one attribute value
    /// or text in an XCCOS body; beyond them the INFO is answered 400.
    pub xml_max_depth: usize,
    pub xml_max_elements: usize,
    pub xml_max_attributes: usize,
    pub xml_max_value_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Offer NTLM with MS-SIPAE signing (what Lync and Pidgin-SIPE sign in with) beside
    /// Digest. Needs users' NT hashes, stored whenever a password is set.
    pub ntlm: bool,
    /// NTLM domain names (NetBIOS style, e.g. `EXAMPLE`) that mean perch's SIP domain; the
    /// domain's first label in capitals is always one, and so is the domain itself.
    pub ntlm_domains: Vec<String>,
    /// The `targetname` of NTLM challenges: the server's host name. Default `<domain>`.
    pub ntlm_target_name: Option<String>,
    /// How long an NTLM security association lasts; then the registration ends. SIPE
    /// re-authenticates 5 minutes before 8 hours, so shorter values disconnect it.
    pub ntlm_association_lifetime_secs: u64,
    pub nonce_lifetime_secs: u64,
    /// Challenges (401s) per second one address (an IPv6 /64) may ask for, in bursts of
    /// five times that; more get `503` with Retry-After.
    pub challenges_per_second_per_address: u32,
    /// The same for a whole network (an IPv4 /24, an IPv6 /48).
    pub challenges_per_second_per_network: u32,
    pub failure_window_secs: u64,
    /// Failed sign-ins from one address (all users) per window before it is refused.
    pub max_failures_per_address: u32,
    /// Failed sign-ins for one user from one address before each further attempt from
    /// there waits, 1 s and doubling. Failures elsewhere never lock the user out.
    pub max_failures_per_user: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registrar {
    pub default_expires_secs: u32,
    pub min_expires_secs: u32,
    pub max_expires_secs: u32,
    /// Advertised in `ms-keep-alive`; clients send a CRLF keep-alive this often.
    pub keep_alive_secs: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Session {
    /// RFC 4028 Session-Expires in the 200 to INVITE (0 = not sent). Clients refresh with
    /// UPDATE; perch never ends an idle dialog itself.
    pub session_expires_secs: u32,
    /// How long a server-originated request waits for its response (RFC 3261 Timer F).
    pub transaction_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `perch=debug`.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domain: "example.test".into(),
            data_dir: PathBuf::from("perch-data"),
            chat_uri: None,
            trusted_networks: Vec::new(),
            listen: Listen::default(),
            http: Http::default(),
            xmpp: Xmpp::default(),
            tls: Tls::default(),
            limits: Limits::default(),
            auth: Auth::default(),
            registrar: Registrar::default(),
            session: Session::default(),
            log: Log::default(),
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            tls: Some(SocketAddr::from(([0, 0, 0, 0], 5061))),
            tcp: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 256 * 1024,
            tls_handshake_timeout_secs: 10,
            idle_timeout_secs: 660,
            outgoing_queue: 1024,
            message_timeout_secs: 30,
            max_connections: 50_000,
            max_connections_per_address: 256,
            requests_per_second: 50,
            request_burst: 200,
            requests_per_second_per_user: 100,
            request_burst_per_user: 400,
            max_rooms_per_bjoin: 200,
            max_dialogs_per_connection: 8,
            max_dialogs_per_user: 32,
            max_dialog_header_bytes: 4096,
            retransmission_bytes_per_connection: 64 * 1024,
            retransmission_bytes_total: 64 * 1024 * 1024,
            xml_max_depth: 16,
            xml_max_elements: 4096,
            xml_max_attributes: 32,
            // A story (the longest post) is StorySizeLimit, 64,000 bytes by default.
            xml_max_value_bytes: 64 * 1024,
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            ntlm: true,
            ntlm_domains: Vec::new(),
            ntlm_target_name: None,
            ntlm_association_lifetime_secs: 8 * 3600,
            nonce_lifetime_secs: 300,
            // An office behind one NAT address signing in again after a network blip:
            // each SIPE sign-in takes two challenges, each Digest one.
            challenges_per_second_per_address: 100,
            challenges_per_second_per_network: 500,
            failure_window_secs: 300,
            max_failures_per_address: 20,
            max_failures_per_user: 5,
        }
    }
}

impl Default for Registrar {
    fn default() -> Self {
        Self {
            default_expires_secs: 3600,
            min_expires_secs: 60,
            max_expires_secs: 7200,
            keep_alive_secs: 300,
        }
    }
}

impl Default for Session {
    fn default() -> Self {
        Self {
            session_expires_secs: 1800,
            transaction_timeout_secs: 32,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// Environment variables that override the file: `PERCH_` then the key path with `__`
/// between levels, e.g. `PERCH_DOMAIN`, `PERCH_LISTEN__TCP`, `PERCH_LIMITS__MAX_BODY_BYTES`.
/// Values are read as TOML (`["127.0.0.0/8"]`, `5000`) and otherwise as plain strings.
pub const ENV_PREFIX: &str = "PERCH_";

/// `perch check`'s own variables (its probe users' passwords): not settings, and not
/// warned about as unknown ones.
pub const CHECK_ENV_PREFIX: &str = "PERCH_CHECK_";

/// A loaded configuration, and the `PERCH_*` variables that name no setting (ignored, so
/// that a variable meant for something else never stops perch; the caller warns).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub ignored_variables: Vec<String>,
}

impl Config {
    /// Loads the file (if any), then applies environment overrides, then validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        Self::load_over(toml::Table::new(), path, env)
    }

    /// Like [`Config::load`], with `defaults` under the file and the environment (the
    /// demo's loopback listeners and domain).
    pub fn load_over(
        defaults: toml::Table,
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let (text, origin) = match path {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?,
                path.display().to_string(),
            ),
            None => (String::new(), "configuration".to_owned()),
        };
        Self::from_text(defaults, &text, origin, env)
    }

    /// The file's `text` (from `origin`) over `defaults`, then the environment.
    fn from_text(
        defaults: toml::Table,
        text: &str,
        origin: String,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let file: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    origin: origin.clone(),
                    message: one_line(&e.to_string()),
                })?;
        let mut table = defaults;
        merge(&mut table, file);
        let mut config = deserialize(&table).map_err(|message| ConfigError::Invalid {
            origin: origin.clone(),
            message,
        })?;
        // Each variable is applied on its own, so that an error names the one at fault.
        let file_valid = config.validate().is_ok();
        let mut ignored_variables = Vec::new();
        let mut applied: Vec<(String, String)> = Vec::new();
        let mut variables: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX) && !name.starts_with(CHECK_ENV_PREFIX))
            .collect();
        variables.sort();
        for (name, value) in variables {
            let blame = |message| ConfigError::Invalid {
                origin: format!("environment variable {name}"),
                message,
            };
            let key = &name[ENV_PREFIX.len()..];
            let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
            if !is_setting(&path) {
                ignored_variables.push(name);
                continue;
            }
            set_path(&mut table, &path, parse_env_value(&value)).map_err(blame)?;
            config = deserialize(&table).map_err(blame)?;
            applied.push((name, path.join(".")));
        }
        config.validate().map_err(|message| {
            // Settings that only make sense together (tls.cert and tls.key) are checked
            // once all are applied: blame the variables the message names, or all of them.
            let origin = if file_valid && !applied.is_empty() {
                let named: Vec<&str> = applied
                    .iter()
                    .filter(|(_, key)| message.contains(&format!("`{key}`")))
                    .map(|(name, _)| name.as_str())
                    .collect();
                let names = if named.is_empty() {
                    applied.iter().map(|(name, _)| name.as_str()).collect()
                } else {
                    named
                };
                let noun = if names.len() == 1 {
                    "variable"
                } else {
                    "variables"
                };
                format!("environment {noun} {}", names.join(", "))
            } else {
                origin
            };
            ConfigError::Invalid { origin, message }
        })?;
        Ok(Loaded {
            config,
            ignored_variables,
        })
    }

    fn validate(&self) -> Result<(), String> {
        if crate::core::ids::domain_name(&self.domain).is_none() {
            return Err(format!(
                "key `domain`: {:?} is not a valid SIP domain",
                self.domain
            ));
        }
        if let Some(uri) = &self.chat_uri
            && crate::core::ids::user_id(uri).is_none()
        {
            return Err(format!(
                "key `chat_uri`: {uri:?} is not a SIP URI like ocschat@{}",
                self.domain
            ));
        }
        if let Some(muc) = &self.xmpp.muc_domain
            && (crate::core::ids::domain_name(muc).is_none()
                || muc.eq_ignore_ascii_case(&self.domain))
        {
            return Err(format!(
                "key `xmpp.muc_domain`: {muc:?} must be a domain name other than `domain`, like conference.{}",
                self.domain
            ));
        }
        if self.xmpp.max_stanza_bytes < 4096 {
            return Err("key `xmpp.max_stanza_bytes`: must be at least 4096".into());
        }
        if self.xmpp.resume_seconds > 3600 {
            return Err("key `xmpp.resume_seconds`: at most 3600 (an hour)".into());
        }
        if self.xmpp.resume_buffer_bytes < 64 * 1024 {
            return Err("key `xmpp.resume_buffer_bytes`: must be at least 65536".into());
        }
        for name in &self.auth.ntlm_domains {
            if !crate::core::ids::is_plain_name(name) {
                return Err(format!(
                    "key `auth.ntlm_domains`: {name:?} is not a domain name like EXAMPLE or example.test"
                ));
            }
        }
        if self.auth.challenges_per_second_per_address == 0
            || self.auth.challenges_per_second_per_network == 0
        {
            return Err("keys `auth.challenges_per_second_*`: must be at least 1".into());
        }
        if self.auth.ntlm_association_lifetime_secs == 0 {
            return Err("key `auth.ntlm_association_lifetime_secs`: must be at least 1".into());
        }
        if let Some(name) = &self.auth.ntlm_target_name
            && crate::core::ids::domain_name(name).is_none()
        {
            return Err(format!(
                "key `auth.ntlm_target_name`: {name:?} is not a host name like chat.example.test"
            ));
        }
        if self.listen.tls.is_none() && self.listen.tcp.is_none() {
            return Err(
                "key `listen`: at least one of `listen.tls` or `listen.tcp` must be set".into(),
            );
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err("keys `tls.cert` and `tls.key`: set both or neither".into());
        }
        let r = &self.registrar;
        if r.min_expires_secs == 0
            || r.min_expires_secs > r.default_expires_secs
            || r.default_expires_secs > r.max_expires_secs
        {
            return Err("keys `registrar.*_expires_secs`: need 0 < min <= default <= max".into());
        }
        if self.limits.max_headers == 0 || self.limits.max_header_bytes < 256 {
            return Err("keys `limits.max_headers` / `limits.max_header_bytes`: too small to carry a SIP request".into());
        }
        let l = &self.limits;
        for (key, value) in [
            ("outgoing_queue", l.outgoing_queue),
            ("max_connections", l.max_connections),
            ("max_connections_per_address", l.max_connections_per_address),
            ("requests_per_second", l.requests_per_second as usize),
            ("request_burst", l.request_burst as usize),
            (
                "requests_per_second_per_user",
                l.requests_per_second_per_user as usize,
            ),
            ("request_burst_per_user", l.request_burst_per_user as usize),
            ("message_timeout_secs", l.message_timeout_secs as usize),
            ("max_rooms_per_bjoin", l.max_rooms_per_bjoin),
            ("max_dialogs_per_connection", l.max_dialogs_per_connection),
            ("max_dialogs_per_user", l.max_dialogs_per_user),
            ("max_dialog_header_bytes", l.max_dialog_header_bytes),
            (
                "retransmission_bytes_per_connection",
                l.retransmission_bytes_per_connection,
            ),
            ("retransmission_bytes_total", l.retransmission_bytes_total),
            ("xml_max_depth", l.xml_max_depth),
            ("xml_max_elements", l.xml_max_elements),
            ("xml_max_attributes", l.xml_max_attributes),
            ("xml_max_value_bytes", l.xml_max_value_bytes),
        ] {
            if value == 0 {
                return Err(format!("key `limits.{key}`: must be at least 1"));
            }
        }
        Ok(())
    }

    /// The room page's address that clients are told, if the HTTPS side is on.
    pub fn room_management_url(&self) -> Option<String> {
        let listen = self.http.listen?;
        if let Some(url) = &self.http.room_management_url {
            return Some(url.clone());
        }
        let host = if listen.ip().is_unspecified() {
            self.domain.clone()
        } else {
            match listen.ip() {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            }
        };
        Some(match listen.port() {
            443 => format!("https://{host}/manage/"),
            port => format!("https://{host}:{port}/manage/"),
        })
    }

    /// The MUC service's domain.
    pub fn muc_domain(&self) -> String {
        self.xmpp
            .muc_domain
            .clone()
            .unwrap_or_else(|| format!("conference.{}", self.domain))
    }

    /// The chat endpoint as `user@domain`.
    pub fn chat_aor(&self) -> String {
        self.chat_uri
            .as_deref()
            .and_then(crate::core::ids::user_id)
            .unwrap_or_else(|| format!("ocschat@{}", self.domain))
    }
}

/// `trusted_networks`: `a.b.c.d/n` or an IPv6 prefix; a bare address is a network of one.
fn networks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| {
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not a network: write a.b.c.d/n (like 10.0.0.0/8) or an IPv6 prefix (like fd00::/8)"
                    ))
                })
        })
        .collect()
}

fn deserialize(table: &toml::Table) -> Result<Config, String> {
    table
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| one_line(&e.to_string()))
}

/// Whether a key path names a setting: a table holding just that key (with a value of any
/// type) fails only for its value, never as an unknown field.
fn is_setting(path: &[String]) -> bool {
    let mut probe = toml::Table::new();
    if path.iter().any(String::is_empty)
        || set_path(&mut probe, path, toml::Value::Boolean(false)).is_err()
    {
        return false;
    }
    !deserialize(&probe).is_err_and(|message| message.contains("unknown field"))
}

/// Lays `over` on `base`, table by table.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => merge(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("key `{part}` is not a table"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load_loaded(text, env).map(|loaded| loaded.config)
    }

    fn load_loaded(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::from_text(toml::Table::new(), text, "perch.toml".into(), env)
    }

    #[test]
    fn defaults_and_overrides() {
        let config = load(
            "domain = \"corp.test\"\n[limits]\nmax_headers = 50\n",
            &[
                ("PERCH_LISTEN__TCP", "127.0.0.1:5060"),
                ("PERCH_TRUSTED_NETWORKS", "[\"127.0.0.0/8\"]"),
                ("HOME", "/root"),
            ],
        )
        .unwrap();
        assert_eq!(config.domain, "corp.test");
        assert_eq!(config.limits.max_headers, 50);
        assert_eq!(config.listen.tcp, Some("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(config.trusted_networks.len(), 1);
        assert_eq!(config.chat_aor(), "ocschat@corp.test");
        assert_eq!(config.registrar.default_expires_secs, 3600);
    }

    #[test]
    fn variables_are_blamed_by_name_and_unknown_ones_ignored() {
        let loaded = load_loaded(
            "domain = \"corp.test\"\n",
            &[
                ("PERCH_FOO", "1"),
                ("PERCH_LIMITS__NO_SUCH_LIMIT", "1"),
                ("PERCH_", "1"),
                ("PERCH_LIMITS__MAX_HEADERS", "50"),
                ("PERCH_CHECK_PASSWORD", "not a setting, not warned about"),
            ],
        )
        .unwrap();
        assert_eq!(
            loaded.ignored_variables,
            ["PERCH_", "PERCH_FOO", "PERCH_LIMITS__NO_SUCH_LIMIT"]
        );
        assert_eq!(loaded.config.limits.max_headers, 50);
        for (name, value, key) in [
            ("PERCH_LIMITS__MAX_HEADERS", "many", "max_headers"),
            ("PERCH_DOMAIN", "bad domain", "domain"),
            ("PERCH_LIMITS__MAX_HEADERS", "0", "max_headers"),
            ("PERCH_DOMAIN__SUB", "x", "domain"),
        ] {
            let err = load("", &[(name, value)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("environment variable {name}: ")) && err.contains(key),
                "{err}"
            );
        }
        // The file's own mistakes are the file's.
        let err = load("domain = \"bad domain\"\n", &[("PERCH_FOO", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("perch.toml: "), "{err}");
    }

    #[test]
    fn trusted_networks_errors_show_the_value_and_the_form() {
        let err = load("trusted_networks = [\"10.0.0.0/33\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"10.0.0.0/33\"") && err.contains("a.b.c.d/n"),
            "{err}"
        );
        let config = load("trusted_networks = [\"192.0.2.7\", \"fd00::/8\"]\n", &[]).unwrap();
        let nets: Vec<String> = config
            .trusted_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["192.0.2.7/32", "fd00::/8"]);
    }

    #[test]
    fn defaults_lie_under_the_file_and_the_environment() {
        let mut defaults = toml::Table::new();
        defaults.insert("domain".into(), toml::Value::String("demo.test".into()));
        let mut listen = toml::Table::new();
        listen.insert("tls".into(), toml::Value::String("127.0.0.1:5061".into()));
        listen.insert("tcp".into(), toml::Value::String("127.0.0.1:5060".into()));
        defaults.insert("listen".into(), toml::Value::Table(listen));
        let env = [("PERCH_LISTEN__TCP".to_owned(), "127.0.0.1:6060".to_owned())];
        let config = Config::from_text(
            defaults,
            "[listen]\ntls = \"127.0.0.1:6061\"\n",
            "perch.toml".into(),
            env,
        )
        .unwrap()
        .config;
        assert_eq!(config.domain, "demo.test");
        assert_eq!(config.listen.tls, Some("127.0.0.1:6061".parse().unwrap()));
        assert_eq!(config.listen.tcp, Some("127.0.0.1:6060".parse().unwrap()));
    }

    #[test]
    fn example_file_documents_valid_keys() {
        // Uncomment every `# key = value` line of the example: the result must load, so the
        // documented keys and the real ones cannot drift apart.
        let example = include_str!("../../perch.example.toml");
        let uncommented: String = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
                {
                    rest
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let config = load(&uncommented, &[]).unwrap();
        assert_eq!(config.listen.tcp, Some("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(config.tls.dev_cert_names, ["chat.example.test"]);
        assert_eq!(config.http.listen, Some("127.0.0.1:8443".parse().unwrap()));
    }

    #[test]
    fn the_room_page_address_follows_the_listener_unless_set() {
        let mut config = Config {
            domain: "example.test".into(),
            ..Config::default()
        };
        assert_eq!(config.room_management_url(), None, "no HTTPS, no room page");
        config.http.listen = Some("127.0.0.1:8443".parse().unwrap());
        assert_eq!(
            config.room_management_url().as_deref(),
            Some("https://127.0.0.1:8443/manage/")
        );
        config.http.listen = Some("[::]:443".parse().unwrap());
        assert_eq!(
            config.room_management_url().as_deref(),
            Some("https://example.test/manage/")
        );
        config.http.listen = Some("[2001:db8::1]:8443".parse().unwrap());
        assert_eq!(
            config.room_management_url().as_deref(),
            Some("https://[2001:db8::1]:8443/manage/")
        );
        config.http.room_management_url = Some("https://chat.example.test/rooms/".into());
        assert_eq!(
            config.room_management_url().as_deref(),
            Some("https://chat.example.test/rooms/")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = load("[limits]\nmax_headers = \"many\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_headers"), "{err}");
        let err = load("colour = 1\n", &[]).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let err = load("", &[("PERCH_TRUSTED_NETWORKS", "[\"nonsense\"]")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("trusted_networks"), "{err}");
        let err = load("domain = \"bad domain\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("domain"), "{err}");
    }
}
