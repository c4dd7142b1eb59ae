//! A client that behaves like SIPE: REGISTER (from a trusted network, with Digest, or with
//! NTLM and MS-SIPAE signing, see [`super::auth`]), the chat dialog (INVITE, 200, ACK),
//! `bjoin` of its rooms, room search, posts, history, and a 200 to every INFO the server
//! sends. Under NTLM every message it sends is signed and every message perch sends must
//! verify.
//!
//! It waits for the answers to what it asked ([`Client::wait_for`] handles whatever
//! arrives meanwhile); everything else (responses to posts queued with
//! [`Client::queue_post`], deliveries, notices, a BYE, a message whose signature failed)
//! goes to its [`Observer`], which is where perch-load counts and `perch check` looks for
//! its probe's delivery.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::auth::{self, AuthError, Login, SignIn, Step};
use super::connect::Connector;
use super::wire::{Event, SipConn, Stream, WireError};
use super::xccos::{self, Incoming};
use crate::lync::session::sipae::{SignatureError, SignedParts};
use crate::lync::sip::Method;
use crate::lync::sip::request::ClientLine;

/// perch's default cap on rooms in one bjoin (`limits.max_rooms_per_bjoin`).
pub const BJOIN_CHUNK: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("{what} answered {code}")]
    Status { what: &'static str, code: u16 },
    #[error("{what} answered XCCOS {code}")]
    Xccos { what: &'static str, code: String },
    #[error("no answer to {0} in time")]
    Timeout(&'static str),
    #[error("the server ended the chat dialog")]
    DialogEnded,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{what}: the server's signature: {error}")]
    Signature {
        what: &'static str,
        error: SignatureError,
    },
}

impl ClientError {
    /// The error kind as reports count it.
    pub fn kind(&self) -> String {
        match self {
            ClientError::Wire(e) => e.kind().to_owned(),
            ClientError::Status { what, code } => format!("status {code} ({what})"),
            ClientError::Xccos { what, code } => format!("xccos {code} ({what})"),
            ClientError::Timeout(what) => format!("timeout: {what}"),
            ClientError::DialogEnded => "dialog ended by server".to_owned(),
            ClientError::Auth(e) => e.kind(),
            ClientError::Signature { what, error } => signature_kind(what, *error),
        }
    }
}

/// A server message that failed MS-SIPAE verification, as reports count it: an error kind
/// of its own.
pub fn signature_kind(what: &str, error: SignatureError) -> String {
    let error = match error {
        SignatureError::Unsigned => "missing",
        SignatureError::WrongAssociation => "wrong association",
        SignatureError::Replayed => "replayed",
        SignatureError::Invalid => "invalid",
    };
    format!("server signature {error} ({what})")
}

/// What a client hands on: every event it was not waiting for. Called as the event is
/// read, so its time is the time it arrived.
pub trait Observer: Send {
    fn event(&mut self, event: Event);
}

/// Ignores everything.
impl Observer for () {
    fn event(&mut self, _: Event) {}
}

/// Keeps everything, in order.
impl Observer for Vec<Event> {
    fn event(&mut self, event: Event) {
        self.push(event);
    }
}

/// Where a client signs in and how long it waits.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SIP domain (the REGISTER's Request-URI, room URIs).
    pub domain: String,
    /// The chat endpoint it INVITEs, e.g. `sip:ocschat@example.test`.
    pub chat_uri: String,
    /// How long one request may wait for its answer.
    pub timeout: Duration,
    /// Nothing waits past this.
    pub deadline: Option<Instant>,
    /// Makes this client's tags, Call-IDs and nonces its own, e.g. `pl17`.
    pub label: String,
}

impl Settings {
    /// `domain`'s default chat endpoint, `ocschat@domain`.
    pub fn new(domain: &str, timeout: Duration, label: &str) -> Self {
        Self {
            domain: domain.to_ascii_lowercase(),
            chat_uri: format!("sip:ocschat@{}", domain.to_ascii_lowercase()),
            timeout,
            deadline: None,
            label: label.to_owned(),
        }
    }
}

struct Dialog {
    call_id: String,
    /// The To header of the 200 to our INVITE (with the server's tag).
    to: String,
}

/// The XCCOS reply to a command we sent.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: Option<String>,
    /// Rooms entered (`chanib`s of an rpl:bjoin).
    pub joined: usize,
    /// Rooms refused (`fib`s).
    pub failed: usize,
    /// The whole INFO body.
    pub body: Bytes,
}

/// The answer to a request we sent: its status and, for INVITE, the To header; for a 401,
/// the challenges; whether its signature failed to verify.
#[derive(Debug, Default)]
struct Answer {
    code: Option<u16>,
    to: Option<String>,
    challenges: Vec<String>,
    unverified: Option<SignatureError>,
}

/// The answers to one REGISTER exchange that was not meant to succeed (see
/// [`Client::register_attempt`]): every final status, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterAttempt {
    pub codes: Vec<u16>,
}

pub struct Client<O: Observer = ()> {
    conn: SipConn,
    settings: Settings,
    pub aor: String,
    /// Our Via and From, the same on every request.
    line: ClientLine,
    calls: u32,
    /// One CSeq counter for every request: it increases within each Call-ID as SIP requires,
    /// and keys our outstanding requests without ambiguity.
    cseq: u32,
    envid: u64,
    dialog: Option<Dialog>,
    answers: HashMap<u32, Answer>,
    replies: HashMap<u64, Option<Reply>>,
    events: Vec<Event>,
    /// A fresh Via branch on every request (off: SIPE's shape, no branch).
    branches: bool,
    /// What the client was not waiting for goes here.
    pub observer: O,
}

impl<O: Observer> Client<O> {
    /// Connects (TCP, or TLS with its handshake) from `source` and signs nothing in yet:
    /// [`Client::register`] does.
    pub async fn connect(
        connector: &Connector,
        source: Option<IpAddr>,
        settings: Settings,
        aor: &str,
        observer: O,
    ) -> Result<Self, ClientError> {
        let (stream, local) = connector.connect(source).await?;
        let tls = connector.transport() == "tls";
        Ok(Self::over(stream, local, tls, settings, aor, observer))
    }

    /// A client over a connected stream; `local`: our address, for Via and Contact.
    pub fn over(
        stream: Box<dyn Stream>,
        local: SocketAddr,
        tls: bool,
        settings: Settings,
        aor: &str,
        observer: O,
    ) -> Self {
        let conn = SipConn::new(stream, local, tls);
        let line = ClientLine::new(
            conn.via_transport,
            &conn.local.to_string(),
            aor,
            &settings.label,
            &settings.label,
        );
        Self {
            conn,
            settings,
            aor: aor.to_owned(),
            line,
            calls: 0,
            cseq: 0,
            envid: 0,
            dialog: None,
            answers: HashMap::new(),
            replies: HashMap::new(),
            events: Vec::new(),
            branches: false,
            observer,
        }
    }

    /// From now on every request carries a Via branch of its own (RFC 3261), as a client
    /// that is not SIPE would send it.
    pub fn with_branches(mut self) -> Self {
        self.branches = true;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the chat dialog is open.
    pub fn in_dialog(&self) -> bool {
        self.dialog.is_some()
    }

    fn new_call_id(&mut self) -> String {
        self.calls += 1;
        format!(
            "{}c{}{}",
            self.settings.label,
            self.calls,
            std::process::id()
        )
    }

    fn next_envid(&mut self) -> u64 {
        self.envid += 1;
        self.envid
    }

    /// Queues a request in SIPE's shape (no Via branch inside dialogs), signed when the
    /// connection has a security association.
    #[allow(clippy::too_many_arguments)]
    fn queue_request(
        &mut self,
        method: &str,
        uri: &str,
        call_id: &str,
        cseq: u32,
        to: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) {
        self.queue_signed(method, uri, call_id, cseq, to, extra, body, None);
    }

    /// [`Client::queue_request`]; `token`: the NTLM AUTHENTICATE (base64) of the REGISTER
    /// that completes the handshake, which travels in the signature's header.
    #[allow(clippy::too_many_arguments)]
    fn queue_signed(
        &mut self,
        method: &str,
        uri: &str,
        call_id: &str,
        cseq: u32,
        to: &str,
        extra: &[(&str, &str)],
        body: &str,
        token: Option<&str>,
    ) {
        let branched;
        let line = if self.branches {
            branched = ClientLine::new(
                self.conn.via_transport,
                &format!(
                    "{};branch=z9hG4bK{}c{cseq}",
                    self.conn.local, self.settings.label
                ),
                &self.aor,
                &self.settings.label,
                &self.settings.label,
            );
            &branched
        } else {
            &self.line
        };
        let head = line.head(method, uri, to, call_id, cseq);
        let cseq_text = cseq.to_string();
        let signature = self.conn.sign(&SignedParts {
            call_id,
            cseq: &cseq_text,
            method,
            from: head.from,
            to,
            asserted_identity: None,
            expires: extra
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("Expires"))
                .map(|(_, value)| *value),
            code: None,
        });
        let authorization = match (signature, token) {
            (Some((_, signed)), Some(token)) => auth::completing_authorization(&signed, token),
            (Some((_, signed)), None) => Some(signed),
            (None, _) => None,
        };
        let mut headers = extra.to_vec();
        if let Some(value) = &authorization {
            headers.push(("Authorization", value));
        }
        let request = head.encode(&headers, body.as_bytes());
        self.conn.queue(&request);
    }

    fn next_cseq(&mut self) -> u32 {
        self.cseq += 1;
        self.cseq
    }

    /// The deadline of a wait that starts now.
    fn deadline(&self) -> Instant {
        let deadline = Instant::now() + self.settings.timeout;
        self.settings.deadline.map_or(deadline, |d| d.min(deadline))
    }

    /// Sends a request and waits for its final answer, which must be a 200.
    async fn request(
        &mut self,
        what: &'static str,
        build: impl FnOnce(&mut Self, u32),
    ) -> Result<Answer, ClientError> {
        let answer = self.exchange(what, build).await?;
        match answer.code {
            Some(200) => Ok(answer),
            Some(code) => Err(ClientError::Status { what, code }),
            None => Err(ClientError::Timeout(what)),
        }
    }

    /// Sends a request and waits for its final answer, whatever it is; an answer whose
    /// signature fails is an error.
    async fn exchange(
        &mut self,
        what: &'static str,
        build: impl FnOnce(&mut Self, u32),
    ) -> Result<Answer, ClientError> {
        let cseq = self.next_cseq();
        build(self, cseq);
        self.answers.insert(cseq, Answer::default());
        let deadline = self.deadline();
        let waited = self
            .wait_for(deadline, what, |c| {
                c.answers.get(&cseq).is_none_or(|a| a.code.is_some())
            })
            .await;
        let answer = self.answers.remove(&cseq).unwrap_or_default();
        waited?;
        match answer.unverified {
            Some(error) => Err(ClientError::Signature { what, error }),
            None => Ok(answer),
        }
    }

    /// REGISTER, answering as many 401s as the sign-in mechanism allows (none from a
    /// trusted network, one with Digest, two with NTLM); one more is a refusal. Under NTLM
    /// the REGISTER that carries the AUTHENTICATE is signed, and so is everything after it.
    pub async fn register(&mut self, sign_in: &SignIn) -> Result<(), ClientError> {
        let codes = self.register_exchange(sign_in).await?;
        match codes.last() {
            Some(200) => Ok(()),
            Some(&code) => Err(ClientError::Status {
                what: "REGISTER",
                code,
            }),
            None => Err(ClientError::Timeout("REGISTER")),
        }
    }

    /// One REGISTER exchange (a new Call-ID) that answers as many 401s as `sign_in` allows,
    /// with what it gives: `SignIn::Trusted` answers none, so the 401 is its result; a
    /// `SignIn::Digest` with a wrong password gets perch's refusal. For floods: the
    /// outcome is what perch answered, not an error.
    pub async fn register_attempt(
        &mut self,
        sign_in: &SignIn,
    ) -> Result<RegisterAttempt, ClientError> {
        self.register_exchange(sign_in)
            .await
            .map(|codes| RegisterAttempt { codes })
    }

    /// REGISTER and the answers to its 401s; returns every final status in order (the
    /// last one is the outcome). Only an answer that never came, or a broken connection,
    /// is an error.
    async fn register_exchange(&mut self, sign_in: &SignIn) -> Result<Vec<u16>, ClientError> {
        let call_id = self.new_call_id();
        let uri = format!("sip:{}", self.settings.domain);
        let to = format!("<sip:{}>", self.aor);
        let contact = format!(
            "<sip:{};transport={}>",
            self.conn.local,
            self.conn.via_transport.to_ascii_lowercase()
        );
        let (mut authorization, mut token): (Option<String>, Option<String>) = (None, None);
        let mut round = 0;
        let mut codes = Vec::new();
        loop {
            let answer = self
                .exchange("REGISTER", |c, cseq| {
                    // As SIPE's: what makes perch offer NTLM beside Digest.
                    let mut headers = vec![
                        ("Contact", contact.as_str()),
                        ("Supported", "gruu-10, adhoclist, msrtc-event-categories"),
                    ];
                    if let Some(value) = &authorization {
                        headers.push(("Authorization", value.as_str()));
                    }
                    c.queue_signed(
                        "REGISTER",
                        &uri,
                        &call_id,
                        cseq,
                        &to,
                        &headers,
                        "",
                        token.as_deref(),
                    );
                })
                .await?;
            let Some(code) = answer.code else {
                return Err(ClientError::Timeout("REGISTER"));
            };
            codes.push(code);
            match code {
                401 if round < sign_in.rounds() => {
                    round += 1;
                    let cnonce = format!("{}c{}r{round}", self.settings.label, self.calls);
                    let login = Login {
                        aor: &self.aor,
                        uri: &uri,
                        cnonce: &cnonce,
                    };
                    (authorization, token) = match sign_in.answer(&answer.challenges, &login)? {
                        Step::Header(value) => (Some(value), None),
                        Step::Associate { association, token } => {
                            self.conn.secure(association);
                            (None, Some(token))
                        }
                    };
                }
                _ => return Ok(codes),
            }
        }
    }

    /// INVITE the chat endpoint, then ACK its 200: the dialog every command travels on.
    pub async fn open_dialog(&mut self) -> Result<(), ClientError> {
        let call_id = self.new_call_id();
        let chat = self.settings.chat_uri.clone();
        let contact = format!("<sip:{};gruu>", self.aor);
        let answer = self
            .exchange("INVITE", |c, cseq| {
                c.queue_request(
                    "INVITE",
                    &chat,
                    &call_id,
                    cseq,
                    &format!("<{chat}>"),
                    &[("Contact", &contact), ("Content-Type", "application/sdp")],
                    "v=0\r\n",
                );
            })
            .await?;
        let to = answer.to.unwrap_or_else(|| format!("<{chat}>"));
        match answer.code {
            Some(200) => {}
            Some(code) => {
                // A refusal is acknowledged too (RFC 3261 17.1.1.3), with its To tag.
                let cseq = self.cseq;
                self.queue_request("ACK", &chat, &call_id, cseq, &to, &[], "");
                self.conn.flush().await?;
                return Err(ClientError::Status {
                    what: "INVITE",
                    code,
                });
            }
            None => return Err(ClientError::Timeout("INVITE")),
        }
        // The ACK carries the INVITE's CSeq number.
        let cseq = self.cseq;
        self.queue_request("ACK", &chat, &call_id, cseq, &to, &[], "");
        self.conn.flush().await?;
        self.dialog = Some(Dialog { call_id, to });
        Ok(())
    }

    /// Ends the chat dialog with a BYE (perch then takes us out of every room).
    pub async fn close_dialog(&mut self) -> Result<(), ClientError> {
        let Some(dialog) = self.dialog.take() else {
            return Ok(());
        };
        let chat = self.settings.chat_uri.clone();
        self.request("BYE", |c, cseq| {
            c.queue_request("BYE", &chat, &dialog.call_id, cseq, &dialog.to, &[], "");
        })
        .await
        .map(|_| ())
    }

    /// Queues an INFO on the chat dialog; returns its CSeq. Its answer goes to the
    /// observer.
    pub fn queue_info(&mut self, body: &str) -> Result<u32, ClientError> {
        let (call_id, to) = match &self.dialog {
            Some(d) => (d.call_id.clone(), d.to.clone()),
            None => return Err(ClientError::DialogEnded),
        };
        let cseq = self.next_cseq();
        let chat = self.settings.chat_uri.clone();
        self.queue_request(
            "INFO",
            &chat,
            &call_id,
            cseq,
            &to,
            &[("Content-Type", "text/plain")],
            body,
        );
        Ok(cseq)
    }

    /// Queues a post of `text` (XML-escaped here) to room `room_uid`; returns its CSeq.
    /// Its answer and its delivery go to the observer.
    pub fn queue_post(&mut self, room_uid: &str, text: &str) -> Result<u32, ClientError> {
        let envid = self.next_envid();
        let uri = xccos::room_uri(&self.settings.domain, room_uid);
        let body = xccos::grpchat(envid, &uri, &self.aor, &xccos::escape(text));
        self.queue_info(&body)
    }

    /// Posts `text` to room `room_uid` and waits for the INFO's answer, which must be a
    /// 200 (perch answers once the post is stored). Its delivery goes to the observer.
    pub async fn post(&mut self, room_uid: &str, text: &str) -> Result<(), ClientError> {
        let cseq = self.queue_post(room_uid, text)?;
        self.answers.insert(cseq, Answer::default());
        let deadline = self.deadline();
        let waited = self
            .wait_for(deadline, "post", |c| {
                c.answers.get(&cseq).is_none_or(|a| a.code.is_some())
            })
            .await;
        let answer = self.answers.remove(&cseq).unwrap_or_default();
        waited?;
        match (answer.unverified, answer.code) {
            (Some(error), _) => Err(ClientError::Signature {
                what: "post",
                error,
            }),
            (None, Some(200)) => Ok(()),
            (None, Some(code)) => Err(ClientError::Status { what: "post", code }),
            (None, None) => Err(ClientError::Timeout("post")),
        }
    }

    /// bjoin of `uids` (at most [`BJOIN_CHUNK`]), waiting for its reply, which must say
    /// 200: rooms refused are counted in it.
    pub async fn bjoin(&mut self, uids: &[String]) -> Result<Reply, ClientError> {
        let envid = self.next_envid();
        let body = xccos::bjoin(envid, &self.settings.domain, uids);
        self.command_ok(envid, &body, "bjoin").await
    }

    /// `cmd:chansrch`: the (name, URI) of every room whose name contains `criteria` that
    /// we may see.
    pub async fn search_rooms(
        &mut self,
        criteria: &str,
    ) -> Result<Vec<(String, String)>, ClientError> {
        let envid = self.next_envid();
        let body = xccos::chansrch(envid, criteria);
        let reply = self.command_ok(envid, &body, "chansrch").await?;
        Ok(xccos::rooms_found(&reply.body))
    }

    /// A `cmd:bccontext` for `room_uid`, waiting for its `rpl:bccontext`, which must say
    /// 200.
    pub async fn bccontext(
        &mut self,
        room_uid: &str,
        query: &xccos::Bcq,
    ) -> Result<Reply, ClientError> {
        let envid = self.next_envid();
        let body = xccos::bccontext(envid, &self.settings.domain, room_uid, query);
        self.command_ok(envid, &body, "bccontext").await
    }

    /// [`Client::command`], whose XCCOS code must be 200.
    async fn command_ok(
        &mut self,
        envid: u64,
        body: &str,
        what: &'static str,
    ) -> Result<Reply, ClientError> {
        let reply = self.command(envid, body, what).await?;
        match reply.code.as_deref() {
            Some("200") => Ok(reply),
            other => Err(ClientError::Xccos {
                what,
                code: other.unwrap_or("none").to_owned(),
            }),
        }
    }

    /// Sends a command INFO and waits for its SIP 200 and its XCCOS reply.
    async fn command(
        &mut self,
        envid: u64,
        body: &str,
        what: &'static str,
    ) -> Result<Reply, ClientError> {
        let cseq = self.queue_info(body)?;
        self.answers.insert(cseq, Answer::default());
        self.replies.insert(envid, None);
        let deadline = self.deadline();
        let waited = self
            .wait_for(deadline, what, |c| {
                let answer = c.answers.get(&cseq).and_then(|a| a.code);
                let unverified = c.answers.get(&cseq).is_some_and(|a| a.unverified.is_some());
                let replied = c.replies.get(&envid).is_none_or(Option::is_some);
                unverified
                    || matches!(answer, Some(code) if code != 200)
                    || (answer.is_some() && replied)
            })
            .await;
        let answer = self.answers.remove(&cseq).unwrap_or_default();
        let reply = self.replies.remove(&envid).flatten();
        if let Some(error) = answer.unverified {
            return Err(ClientError::Signature { what, error });
        }
        waited?;
        match (answer.code, reply) {
            (Some(200), Some(reply)) => Ok(reply),
            (Some(code), _) if code != 200 => Err(ClientError::Status { what, code }),
            _ => Err(ClientError::Timeout(what)),
        }
    }

    /// Waits until `done` holds (or `deadline`, capped by the settings' deadline, passes),
    /// answering whatever arrives meanwhile and handing the observer what it should see.
    pub async fn wait_for(
        &mut self,
        deadline: Instant,
        what: &'static str,
        done: impl Fn(&Self) -> bool,
    ) -> Result<(), ClientError> {
        let deadline = self.settings.deadline.map_or(deadline, |d| d.min(deadline));
        loop {
            if done(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout(what));
            }
            self.pump(deadline, std::future::pending()).await?;
        }
    }

    /// Sends what is queued, then waits until bytes arrive, `until` passes (capped by the
    /// settings' deadline), or `wake` resolves; handles whatever arrived.
    pub async fn pump(
        &mut self,
        until: Instant,
        wake: impl Future<Output = ()>,
    ) -> Result<(), ClientError> {
        self.conn.flush().await?;
        let until = self.settings.deadline.map_or(until, |d| d.min(until));
        tokio::select! {
            read = self.conn.read_some() => {
                read?;
                self.process()?;
            }
            _ = tokio::time::sleep_until(until.into()) => {}
            _ = wake => {}
        }
        if self.conn.has_pending_writes() {
            self.conn.flush().await?;
        }
        Ok(())
    }

    fn process(&mut self) -> Result<(), ClientError> {
        let mut events = std::mem::take(&mut self.events);
        let drained = self.conn.drain(&mut events);
        for event in events.drain(..) {
            self.handle(event);
        }
        self.events = events;
        // A BYE from the server ended the dialog in `handle`; the next request on it fails
        // with `DialogEnded`.
        drained?;
        Ok(())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Response {
                cseq,
                code,
                ref to,
                ref challenges,
                ..
            } => {
                if code < 200 {
                    return;
                }
                if let Some(answer) = self.answers.get_mut(&cseq) {
                    answer.code = Some(code);
                    answer.to = to.clone();
                    answer.challenges = challenges.clone();
                    return;
                }
            }
            Event::Unverified {
                error, cseq, code, ..
            } => {
                // A final answer fails the request it answers.
                if code.is_some_and(|code| code >= 200)
                    && let Some(answer) = self.answers.get_mut(&cseq)
                {
                    answer.code = code;
                    answer.unverified = Some(error);
                    return;
                }
            }
            Event::Request {
                method: Method::Info,
                ref body,
            } => {
                if let Incoming::Reply {
                    envid,
                    code,
                    joined,
                    failed,
                } = xccos::classify(body)
                    && let Some(slot) = self.replies.get_mut(&envid)
                {
                    *slot = Some(Reply {
                        code,
                        joined,
                        failed,
                        body: body.clone(),
                    });
                    return;
                }
            }
            Event::Request {
                method: Method::Bye,
                ..
            } => self.dialog = None,
            Event::Request { .. } => {}
        }
        self.observer.event(event);
    }
}
