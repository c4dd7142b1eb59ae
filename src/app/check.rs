//! `perch check`: the synthetic transaction a monitoring system runs. Two probe users sign
//! in over TLS, open their chat dialogs, join a room; the first posts a unique text, the
//! second must receive it, and the room's history must hold it under the same message id.
//! Each step is timed; the result is one line in the monitoring-plugin format
//! (`PERCH CHECK OK - … | perfdata`) and its exit status: 0 OK, 1 WARNING (every step
//! passed, but the whole or a step took longer than `warn`), 2 CRITICAL (a step failed,
//! took longer than `critical`, or got no answer within `timeout`), 3 UNKNOWN (the check
//! itself is misconfigured). It is a client of the kit (`lync::client`), like perch-load.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::app::admin::demo;
use crate::app::config::{CHECK_ENV_PREFIX, Config};

use crate::lync::client::xccos::{self, Bcq, Incoming, Post};
use crate::lync::client::{
    Client, ClientError, Connector, Event, Observer, Settings, SignIn, Trust, WireError,
};
use crate::lync::sip::Method;

/// The steps, in order, by the names the output gives them.
pub const STEPS: [&str; 7] = [
    "register_a",
    "register_b",
    "dialogs",
    "join",
    "post",
    "delivery",
    "history",
];

/// How many of the room's last messages the history step reads.
const HISTORY_DEPTH: u32 = 30;

/// What to check, and the thresholds.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The server's SIP over TLS address, `host:port`.
    pub server: String,
    pub domain: String,
    /// The room's name, or its `ma-chan://` URI.
    pub room: String,
    /// The user who posts, and the peer who must receive it (`user@domain`).
    pub user: String,
    pub peer: String,
    pub user_sign_in: SignIn,
    pub peer_sign_in: SignIn,
    pub trust: Trust,
    /// How long to wait to connect and for any one answer.
    pub timeout: Duration,
    pub warn: Duration,
    pub critical: Duration,
}

/// The command line's choices, before the defaults of the configuration and `--demo`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub server: Option<String>,
    pub domain: Option<String>,
    pub room: Option<String>,
    pub user: Option<String>,
    pub peer: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub ntlm: bool,
    pub timeout: Duration,
    pub warn: Duration,
    pub critical: Duration,
    /// The demo's room, users, passwords and certificate where nothing else is given.
    pub demo: bool,
}

/// The user's password variable; the peer's is [`PEER_PASSWORD_VARIABLE`], or the user's.
pub const PASSWORD_VARIABLE: &str = "PERCH_CHECK_PASSWORD";
pub const PEER_PASSWORD_VARIABLE: &str = "PERCH_CHECK_PEER_PASSWORD";

impl Options {
    /// The probe, with what was not given taken from `config` (the server's TLS listener,
    /// its domain) and, with `demo`, from the demo (room Lobby, alice and bob with their
    /// demo passwords, the certificate the demo server generated in its data directory).
    /// Passwords come from `--password-file` (first line the user's, second the peer's,
    /// else the same) or from `env` ([`PASSWORD_VARIABLE`], [`PEER_PASSWORD_VARIABLE`]).
    pub fn probe(
        &self,
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Probe, String> {
        debug_assert!(PASSWORD_VARIABLE.starts_with(CHECK_ENV_PREFIX));
        let server = match (&self.server, config.listen.tls) {
            (Some(server), _) => server.clone(),
            // A server listening on every address is reached on loopback.
            (None, Some(mut addr)) => {
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                addr.to_string()
            }
            (None, None) => {
                return Err(
                    "no server to check: give --server HOST:PORT (listen.tls is off)".into(),
                );
            }
        };
        if !server
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        {
            return Err(format!(
                "--server {server:?} is not HOST:PORT (e.g. chat.example.com:5061)"
            ));
        }
        let domain = self
            .domain
            .clone()
            .unwrap_or_else(|| config.domain.clone())
            .to_ascii_lowercase();
        let demo_user = |n: usize| self.demo.then(|| demo::DEMO_USERS[n].0.to_owned());
        let qualified = |user: String| {
            let user = user
                .strip_prefix("sip:")
                .unwrap_or(&user)
                .to_ascii_lowercase();
            if user.contains('@') {
                user
            } else {
                format!("{user}@{domain}")
            }
        };
        let user = self
            .user
            .clone()
            .or_else(|| demo_user(0))
            .map(qualified)
            .ok_or("--user is needed (the probe user who posts)")?;
        let peer = self
            .peer
            .clone()
            .or_else(|| demo_user(1))
            .map(qualified)
            .ok_or("--peer is needed (the probe user who must receive the post)")?;
        if user == peer {
            return Err(format!(
                "--user and --peer are both {user}: the check needs two users"
            ));
        }
        let room = self
            .room
            .clone()
            .or_else(|| self.demo.then(|| "Lobby".to_owned()))
            .ok_or("--room is needed (a room name, or its ma-chan:// URI)")?;
        let (user_password, peer_password) = self.passwords(&user, &peer, &domain, env)?;
        let sign_in = |password: &str| {
            if self.ntlm {
                SignIn::ntlm(password)
            } else {
                SignIn::digest(password)
            }
        };
        let trust = match (&self.ca, self.demo) {
            (Some(ca), _) => Trust::File(ca.clone()),
            (None, true) => Trust::File(
                config
                    .tls
                    .cert
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join(crate::net::tls::DEV_CERT_FILE)),
            ),
            (None, false) => Trust::System,
        };
        if let Trust::File(path) = &trust
            && !path.is_file()
        {
            return Err(format!(
                "no certificate at {}{}",
                path.display(),
                if self.demo {
                    " (start the demo with `perch serve --demo` first, in the same directory)"
                } else {
                    ""
                }
            ));
        }
        Ok(Probe {
            server,
            domain,
            room,
            user,
            peer,
            user_sign_in: sign_in(&user_password),
            peer_sign_in: sign_in(&peer_password),
            trust,
            timeout: self.timeout,
            warn: self.warn,
            critical: self.critical,
        })
    }

    fn passwords(
        &self,
        user: &str,
        peer: &str,
        domain: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(String, String), String> {
        if let Some(path) = &self.password_file {
            let text = read_password_file(path)?;
            let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
            let first = lines
                .next()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| format!("{} holds no password", path.display()))?;
            let second = lines.next().filter(|l| !l.is_empty()).unwrap_or(first);
            return Ok((first.to_owned(), second.to_owned()));
        }
        let demo_password = |aor: &str| {
            self.demo
                .then(|| {
                    demo::DEMO_USERS
                        .iter()
                        .find(|(name, _, _)| format!("{name}@{domain}") == aor)
                        .map(|(_, password, _)| (*password).to_owned())
                })
                .flatten()
        };
        let first = env(PASSWORD_VARIABLE).or_else(|| demo_password(user));
        let second = env(PEER_PASSWORD_VARIABLE)
            .or_else(|| env(PASSWORD_VARIABLE))
            .or_else(|| demo_password(peer));
        match (first, second) {
            (Some(first), Some(second)) => Ok((first, second)),
            _ => Err(format!(
                "no password for the probe users: give --password-file FILE, or set {PASSWORD_VARIABLE} (and {PEER_PASSWORD_VARIABLE} for the peer)"
            )),
        }
    }
}

fn read_password_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The monitoring-plugin states, with their exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

/// The check's result: its state and its one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub state: State,
    pub line: String,
}

impl Outcome {
    fn new(state: State, text: &str, perfdata: &str) -> Self {
        let mut line = format!("PERCH CHECK {} - {text}", state.name());
        if !perfdata.is_empty() {
            let _ = write!(line, " | {perfdata}");
        }
        Outcome { state, line }
    }

    /// A check that could not run as asked: UNKNOWN.
    pub fn unknown(message: &str) -> Self {
        Outcome::new(State::Unknown, &one_line(message), "")
    }
}

/// The posts a probe client receives.
#[derive(Default)]
struct Inbox {
    posts: Vec<Post>,
}

impl Observer for Inbox {
    fn event(&mut self, event: Event) {
        if let Event::Request {
            method: Method::Info,
            body,
        } = event
            && xccos::classify(&body) == Incoming::Post
        {
            self.posts.extend(xccos::posts(&body));
        }
    }
}

/// Why a step failed, in words.
struct Failed(String);

impl From<ClientError> for Failed {
    fn from(error: ClientError) -> Self {
        Failed(error.to_string())
    }
}

/// The steps' times so far.
struct Timings {
    started: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Timings {
    /// Whole milliseconds, rounded as the perfdata's seconds are.
    fn ms(duration: Duration) -> u128 {
        (duration.as_micros() + 500) / 1000
    }

    fn summary(&self) -> String {
        self.steps
            .iter()
            .map(|(name, took)| format!("{name} {} ms", Timings::ms(*took)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `'label'=value[UOM];[warn];[crit];[min]` for each step and the total, in seconds.
    fn perfdata(&self, probe: &Probe, total: Option<Duration>) -> String {
        let (warn, critical) = (probe.warn.as_secs_f64(), probe.critical.as_secs_f64());
        self.steps
            .iter()
            .map(|(name, took)| (*name, *took))
            .chain(total.map(|total| ("total", total)))
            .map(|(name, took)| {
                format!(
                    "{name}={:.3}s;{warn:.3};{critical:.3};0",
                    took.as_secs_f64()
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs the check and says how it went; never panics on what the server does.
pub async fn run(probe: &Probe) -> Outcome {
    let mut timings = Timings {
        started: Instant::now(),
        steps: Vec::new(),
    };
    let result = transaction(probe, &mut timings).await;
    let total = timings.started.elapsed();
    match result {
        Err((step, Failed(reason))) => Outcome::new(
            State::Critical,
            &format!("{step} failed: {}", one_line(&reason)),
            &timings.perfdata(probe, None),
        ),
        Ok(()) => judge(probe, &timings, total),
    }
}

/// Every step passed: OK, or WARNING/CRITICAL for what took longer than the thresholds.
fn judge(probe: &Probe, timings: &Timings, total: Duration) -> Outcome {
    let over = |limit: Duration| -> Vec<&'static str> {
        std::iter::once(("total", total))
            .chain(timings.steps.iter().copied())
            .filter(|(_, took)| *took > limit)
            .map(|(name, _)| name)
            .collect()
    };
    let (state, limit, names) = match (over(probe.critical), over(probe.warn)) {
        (critical, _) if !critical.is_empty() => (State::Critical, probe.critical, critical),
        (_, warn) if !warn.is_empty() => (State::Warning, probe.warn, warn),
        _ => (State::Ok, probe.warn, Vec::new()),
    };
    let mut text = format!("{} steps in {} ms", timings.steps.len(), Timings::ms(total));
    if !names.is_empty() {
        let _ = write!(
            text,
            ", over --{} {} ms: {}",
            if state == State::Critical {
                "critical"
            } else {
                "warn"
            },
            Timings::ms(limit),
            names.join(", ")
        );
    }
    let _ = write!(text, " ({})", timings.summary());
    Outcome::new(state, &text, &timings.perfdata(probe, Some(total)))
}

/// Times one step, which gets `probe.timeout` at most (the client's own waits are as
/// long, so this only bounds a step of several waits).
async fn step<T>(
    timings: &mut Timings,
    name: &'static str,
    timeout: Duration,
    work: impl Future<Output = Result<T, Failed>>,
) -> Result<T, (&'static str, Failed)> {
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(Failed(format!(
            "no answer within --timeout {} s",
            timeout.as_secs_f64()
        ))),
    };
    let value = result.map_err(|failed| (name, failed))?;
    timings.steps.push((name, started.elapsed()));
    Ok(value)
}

async fn transaction(probe: &Probe, timings: &mut Timings) -> Result<(), (&'static str, Failed)> {
    let [
        register_a,
        register_b,
        dialogs,
        join,
        post,
        delivery,
        history,
    ] = STEPS;
    // One step's waits, added up, stay within a few timeouts.
    let budget = probe.timeout * 3;
    let unique = format!(
        "perch check {}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut a = step(
        timings,
        register_a,
        budget,
        sign_in(probe, &probe.user, &probe.user_sign_in, "pca"),
    )
    .await?;
    let mut b = step(
        timings,
        register_b,
        budget,
        sign_in(probe, &probe.peer, &probe.peer_sign_in, "pcb"),
    )
    .await?;
    step(timings, dialogs, budget, async {
        a.open_dialog().await.map_err(|e| named(&probe.user, e))?;
        b.open_dialog().await.map_err(|e| named(&probe.peer, e))?;
        Ok(())
    })
    .await?;
    let uid = step(timings, join, budget, async {
        let uid = room_uid(probe, &mut a).await?;
        for (client, who) in [(&mut a, &probe.user), (&mut b, &probe.peer)] {
            let reply = client
                .bjoin(std::slice::from_ref(&uid))
                .await
                .map_err(|e| named(who, e))?;
            if reply.joined != 1 {
                return Err(Failed(format!(
                    "{who} may not join room {} (the server refused it)",
                    probe.room
                )));
            }
        }
        Ok(uid)
    })
    .await?;
    step(timings, post, budget, async {
        a.post(&uid, &unique)
            .await
            .map_err(|e| named(&probe.user, e))
    })
    .await?;
    let msgid = step(timings, delivery, budget, async {
        let deadline = Instant::now() + probe.timeout;
        let seen = |inbox: &Inbox| inbox.posts.iter().find(|p| p.text == unique).cloned();
        b.wait_for(deadline, "the post's delivery", |c| {
            seen(&c.observer).is_some()
        })
        .await
        .map_err(|e| named(&probe.peer, e))?;
        seen(&b.observer)
            .and_then(|p| p.msgid)
            .ok_or_else(|| Failed("the delivered post carries no message id".into()))
    })
    .await?;
    step(timings, history, budget, async {
        let reply = b
            .bccontext(&uid, &Bcq::Last { cnt: HISTORY_DEPTH })
            .await
            .map_err(|e| named(&probe.peer, e))?;
        let stored = xccos::posts(&reply.body);
        match stored.iter().find(|p| p.text == unique) {
            Some(p) if p.msgid == Some(msgid) => Ok(()),
            Some(p) => Err(Failed(format!(
                "history holds the post as message {}, its delivery was message {msgid}",
                p.msgid.map_or("without id".into(), |id| id.to_string())
            ))),
            None => Err(Failed(format!(
                "the post (message {msgid}) is not among the room's last {HISTORY_DEPTH} messages"
            ))),
        }
    })
    .await?;
    // Leaving is not part of the check: a BYE ends both dialogs, closing ends the rest.
    let _ = tokio::time::timeout(probe.timeout, async {
        let _ = a.close_dialog().await;
        let _ = b.close_dialog().await;
    })
    .await;
    Ok(())
}

/// A client error, with the probe user it happened to.
fn named(who: &str, error: ClientError) -> Failed {
    Failed(format!("{who}: {}", describe(error)))
}

/// A client error in words a monitoring line can carry.
fn describe(error: ClientError) -> String {
    match error {
        ClientError::Wire(WireError::Tls(e)) => format!("TLS handshake: {e}"),
        other => other.to_string(),
    }
}

/// Connects over TLS and registers `aor`.
async fn sign_in(
    probe: &Probe,
    aor: &str,
    sign_in: &SignIn,
    label: &str,
) -> Result<Client<Inbox>, Failed> {
    let (addr, host) = resolve(&probe.server).await?;
    let connector = Connector::tls(addr, host, &probe.trust, probe.timeout)
        .map_err(|e| Failed(e.to_string()))?;
    let settings = Settings::new(&probe.domain, probe.timeout, label);
    let mut client = Client::connect(&connector, None, settings, aor, Inbox::default())
        .await
        .map_err(|error| match error {
            ClientError::Wire(WireError::Connect(e)) => {
                Failed(format!("connect {}: {}", probe.server, io_text(&e)))
            }
            ClientError::Wire(WireError::ConnectTimeout) => Failed(format!(
                "connect {}: no answer within --timeout {} s",
                probe.server,
                probe.timeout.as_secs_f64()
            )),
            ClientError::Wire(WireError::Tls(e)) => {
                Failed(format!("TLS handshake with {}: {e}", probe.server))
            }
            other => Failed(describe(other)),
        })?;
    client.register(sign_in).await.map_err(|e| named(aor, e))?;
    Ok(client)
}

/// `host:port` → the first address it resolves to, and the host (the name the server's
/// certificate must carry).
async fn resolve(server: &str) -> Result<(SocketAddr, &str), Failed> {
    let host = server
        .rsplit_once(':')
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(server);
    let mut addrs = tokio::net::lookup_host(server)
        .await
        .map_err(|e| Failed(format!("resolve {server}: {}", io_text(&e))))?;
    let addr = addrs
        .next()
        .ok_or_else(|| Failed(format!("resolve {server}: no address")))?;
    Ok((addr, host))
}

/// An I/O error as `connection refused`, without the OS's decoration.
fn io_text(error: &std::io::Error) -> String {
    if error.raw_os_error().is_some() {
        error.kind().to_string()
    } else {
        error.to_string()
    }
}

/// The room's id: from its `ma-chan://` URI, or found by name with `cmd:chansrch` (the
/// name must match exactly; case is ignored if no room matches it exactly).
async fn room_uid(probe: &Probe, client: &mut Client<Inbox>) -> Result<String, Failed> {
    if probe.room.starts_with(xccos::ROOM_SCHEME) {
        return xccos::room_uid(&probe.room, &probe.domain)
            .map(str::to_owned)
            .ok_or_else(|| {
                Failed(format!(
                    "{} is not a room URI of {}",
                    probe.room, probe.domain
                ))
            });
    }
    let rooms = client
        .search_rooms(&probe.room)
        .await
        .map_err(|e| named(&probe.user, e))?;
    let found = rooms
        .iter()
        .find(|(name, _)| *name == probe.room)
        .or_else(|| {
            rooms
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&probe.room))
        });
    let (_, uri) = found.ok_or_else(|| {
        Failed(format!(
            "{} sees no room named {:?}",
            probe.user, probe.room
        ))
    })?;
    xccos::room_uid(uri, &probe.domain)
        .map(str::to_owned)
        .ok_or_else(|| {
            Failed(format!(
                "the server listed room {uri}, not one of {}",
                probe.domain
            ))
        })
}

/// Everything on one line: a monitoring system reads the first.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Probe {
        Probe {
            server: "127.0.0.1:5061".into(),
            domain: "example.test".into(),
            room: "Lobby".into(),
            user: "alice@example.test".into(),
            peer: "bob@example.test".into(),
            user_sign_in: SignIn::digest("a"),
            peer_sign_in: SignIn::digest("b"),
            trust: Trust::System,
            timeout: Duration::from_secs(10),
            warn: Duration::from_millis(1000),
            critical: Duration::from_millis(5000),
        }
    }

    fn timings(ms: &[u64]) -> Timings {
        Timings {
            started: Instant::now(),
            steps: STEPS
                .iter()
                .zip(ms)
                .map(|(name, ms)| (*name, Duration::from_millis(*ms)))
                .collect(),
        }
    }

    /// `--demo` fills in what was not given: the demo's listener, room, users, passwords
    /// and certificate; given options and the environment's passwords win.
    #[test]
    fn the_demo_and_the_configuration_fill_in_what_was_not_given() {
        let config = Config::load_over(demo::config_defaults(), None, Vec::new())
            .unwrap()
            .config;
        let demo = Options {
            demo: true,
            ..Options::default()
        };
        let dir = std::env::temp_dir().join(format!("perch-check-demo-{}", std::process::id()));
        let config = Config {
            data_dir: dir.clone(),
            ..config
        };
        let missing = demo.probe(&config, |_| None).unwrap_err();
        assert!(missing.contains("perch serve --demo"), "{missing}");
        crate::net::tls::ensure_dev_certificate(&dir, "example.test", &[]).unwrap();
        let probe = demo.probe(&config, |_| None).unwrap();
        assert_eq!(probe.server, "127.0.0.1:5061");
        assert_eq!(
            (
                probe.user.as_str(),
                probe.peer.as_str(),
                probe.room.as_str()
            ),
            ("alice@example.test", "bob@example.test", "Lobby")
        );
        assert!(
            matches!(&probe.user_sign_in, SignIn::Digest { password } if password == "alice-demo")
        );
        assert!(
            matches!(&probe.peer_sign_in, SignIn::Digest { password } if password == "bob-demo")
        );
        assert_eq!(probe.trust, Trust::File(dir.join("dev-cert.pem")));
        let env = |name: &str| (name == PASSWORD_VARIABLE).then(|| "from-env".to_owned());
        let given = Options {
            user: Some("sip:Carol".into()),
            ntlm: true,
            ..demo.clone()
        }
        .probe(&config, env)
        .unwrap();
        assert_eq!(given.user, "carol@example.test");
        assert!(matches!(given.peer_sign_in, SignIn::Ntlm { .. }));
        let plain = Options::default().probe(&Config::default(), |_| None);
        assert!(plain.unwrap_err().contains("--user is needed"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_line_says_the_state_the_steps_and_their_perfdata() {
        let ok = judge(
            &probe(),
            &timings(&[12, 10, 5, 8, 20, 1, 3]),
            Duration::from_millis(84),
        );
        assert_eq!(ok.state, State::Ok);
        assert_eq!(
            ok.line,
            "PERCH CHECK OK - 7 steps in 84 ms (register_a 12 ms, register_b 10 ms, dialogs 5 ms, join 8 ms, post 20 ms, delivery 1 ms, history 3 ms) | register_a=0.012s;1.000;5.000;0 register_b=0.010s;1.000;5.000;0 dialogs=0.005s;1.000;5.000;0 join=0.008s;1.000;5.000;0 post=0.020s;1.000;5.000;0 delivery=0.001s;1.000;5.000;0 history=0.003s;1.000;5.000;0 total=0.084s;1.000;5.000;0"
        );
        let slow = judge(
            &probe(),
            &timings(&[12, 10, 5, 8, 1200, 1, 3]),
            Duration::from_millis(1239),
        );
        assert_eq!(slow.state, State::Warning);
        assert!(
            slow.line.starts_with(
                "PERCH CHECK WARNING - 7 steps in 1239 ms, over --warn 1000 ms: total, post ("
            ),
            "{}",
            slow.line
        );
        let late = judge(
            &probe(),
            &timings(&[12, 10, 5, 8, 5200, 1, 3]),
            Duration::from_millis(5239),
        );
        assert_eq!(late.state, State::Critical);
        assert!(
            late.line.contains("over --critical 5000 ms: total, post"),
            "{}",
            late.line
        );
        assert_eq!(State::Unknown.exit_code(), 3);
        assert_eq!(
            Outcome::unknown("no\npassword").line,
            "PERCH CHECK UNKNOWN - no password"
        );
    }
}
