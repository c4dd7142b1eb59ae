//! A load client that behaves like SIPE: REGISTER (from a trusted network, with Digest, or
//! with NTLM and MS-SIPAE signing, see [`crate::auth`]), the chat dialog (INVITE, 200,
//! ACK), `bjoin` of its rooms, posts, and a 200 to every INFO the server sends. Under NTLM
//! every message it sends is signed and every message perch sends must verify. It counts
//! what it sees into the run's [`Metrics`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use perch::lync::session::sipae::{SignatureError, SignedParts};
use perch::lync::sip::Method;
use perch::lync::sip::request::ClientLine;
use tokio::sync::watch;

use crate::auth::{self, AuthError, Login, SignIn, Step};
use crate::random::Random;
use crate::run::{Phase, RunContext};
use crate::stats::{Latency, Metrics, Samples, now_ns};
use crate::wire::{Event, SipConn, WireError};
use crate::xccos::{self, Incoming};

/// perch's default cap on rooms in one bjoin (`limits.max_rooms_per_bjoin`).
const BJOIN_CHUNK: usize = 200;

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

struct Dialog {
    call_id: String,
    /// The To header of the 200 to our INVITE (with the server's tag).
    to: String,
}

/// A reply awaited for a command we sent.
#[derive(Debug, Clone)]
struct Reply {
    code: Option<String>,
    joined: usize,
    failed: usize,
    /// The messages of an `rpl:bccontext`.
    history: Option<xccos::HistoryPage>,
}

/// A server message that failed MS-SIPAE verification, as reports count it: an error kind
/// of its own.
fn signature_kind(what: &str, error: SignatureError) -> String {
    let error = match error {
        SignatureError::Unsigned => "missing",
        SignatureError::WrongAssociation => "wrong association",
        SignatureError::Replayed => "replayed",
        SignatureError::Invalid => "invalid",
    };
    format!("server signature {error} ({what})")
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

pub struct Client {
    conn: SipConn,
    ctx: Arc<RunContext>,
    pub index: usize,
    pub aor: String,
    /// Rooms entered by bjoin so far.
    pub entered: usize,
    /// Our Via and From, the same on every request.
    line: ClientLine,
    calls: u32,
    /// One CSeq counter for every request: it increases within each Call-ID as SIP requires,
    /// and keys our outstanding requests without ambiguity.
    cseq: u32,
    envid: u64,
    posts_sent: u64,
    dialog: Option<Dialog>,
    counted: bool,
    /// Outstanding posts: CSeq → send time and the deliveries the post will owe.
    posts: HashMap<u32, (u64, u64)>,
    answers: HashMap<u32, Answer>,
    replies: HashMap<u64, Option<Reply>>,
    events: Vec<Event>,
    samples: Samples,
    /// Draws the words of this client's posts.
    words: Random,
    /// A fresh Via branch on every request (off: SIPE's shape, no branch).
    branches: bool,
    /// The post [`Client::post_confirmed`] waits for: its CSeq, its send time, its final
    /// status once answered, and whether its delivery came back to us.
    watched: Option<Watched>,
}

/// One post followed to its acknowledgement and its echo.
#[derive(Debug, Clone, Copy)]
struct Watched {
    cseq: u32,
    sent_ns: u64,
    status: Option<u16>,
    echoed: bool,
}

/// The answers to one REGISTER exchange that was not meant to succeed (see
/// [`Client::register_attempt`]): every final status, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterAttempt {
    pub codes: Vec<u16>,
}

impl Client {
    /// Connects and registers; the login latency runs from the connect to the 200.
    pub async fn login(
        ctx: Arc<RunContext>,
        index: usize,
        aor: String,
    ) -> Result<Client, ClientError> {
        let started = now_ns();
        let mut client = Client::connect(ctx, index, aor).await?;
        client.register().await?;
        let done = now_ns();
        let metrics = client.ctx.metrics.clone();
        Metrics::add(&metrics.registered, 1);
        Metrics::mark(
            &metrics.login_first_ns,
            &metrics.login_last_ns,
            started,
            done,
        );
        client
            .samples
            .record(&metrics, Latency::Login, started, done);
        Ok(client)
    }

    /// Connects (TCP, or TLS with its handshake) as connection number `index` and signs
    /// nothing in yet: [`Client::login`] registers, [`Client::register_attempt`] tries.
    pub async fn connect(
        ctx: Arc<RunContext>,
        index: usize,
        aor: String,
    ) -> Result<Client, ClientError> {
        let (stream, local) = ctx
            .connector
            .connect(ctx.connector.source_for(index))
            .await?;
        let tls = ctx.connector.transport() == "tls";
        let conn = SipConn::new(stream, local, tls);
        let line = ClientLine::new(
            conn.via_transport,
            &conn.local.to_string(),
            &aor,
            &format!("pl{index}"),
            &format!("pl{index}"),
        );
        let client = Client {
            conn,
            ctx,
            index,
            aor,
            entered: 0,
            line,
            calls: 0,
            cseq: 0,
            envid: 0,
            posts_sent: 0,
            dialog: None,
            counted: false,
            posts: HashMap::new(),
            answers: HashMap::new(),
            replies: HashMap::new(),
            events: Vec::new(),
            samples: Samples::default(),
            words: Random::new(index as u64),
            branches: false,
            watched: None,
        };
        Ok(client)
    }

    /// From now on every request carries a Via branch of its own (RFC 3261), as a client
    /// that is not SIPE would send it.
    pub fn with_branches(mut self) -> Self {
        self.branches = true;
        self
    }

    fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    fn new_call_id(&mut self) -> String {
        self.calls += 1;
        format!("pl{}c{}{}", self.index, self.calls, std::process::id())
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
                &format!("{};branch=z9hG4bKpl{}c{cseq}", self.conn.local, self.index),
                &self.aor,
                &format!("pl{}", self.index),
                &format!("pl{}", self.index),
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
        let deadline = Instant::now() + self.ctx.timeout;
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
    async fn register(&mut self) -> Result<(), ClientError> {
        let ctx = self.ctx.clone();
        let codes = self.register_exchange(&ctx.sign_in).await?;
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
    /// outcome is what perch answered, not an error. Does not count a login.
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
        let uri = format!("sip:{}", self.ctx.domain);
        let to = format!("<sip:{}>", self.aor);
        let contact = format!(
            "<sip:{};transport={}>",
            self.conn.local,
            self.ctx.connector.transport()
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
                    let cnonce = format!("pl{}c{}r{round}", self.index, self.calls);
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
        let chat = self.ctx.chat_uri.clone();
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
        if !self.counted {
            // A session is a connection with a chat dialog, however often it reopens one.
            self.counted = true;
            Metrics::add(&self.metrics().sessions, 1);
        }
        Ok(())
    }

    /// Ends the chat dialog with a BYE (perch then takes us out of every room).
    pub async fn close_dialog(&mut self) -> Result<(), ClientError> {
        let Some(dialog) = self.dialog.take() else {
            return Ok(());
        };
        let chat = self.ctx.chat_uri.clone();
        self.request("BYE", |c, cseq| {
            c.queue_request("BYE", &chat, &dialog.call_id, cseq, &dialog.to, &[], "");
        })
        .await
        .map(|_| ())
    }

    /// Queues an INFO on the chat dialog; returns its CSeq.
    fn queue_info(&mut self, body: &str) -> Result<u32, ClientError> {
        let (call_id, to) = match &self.dialog {
            Some(d) => (d.call_id.clone(), d.to.clone()),
            None => return Err(ClientError::DialogEnded),
        };
        let cseq = self.next_cseq();
        let chat = self.ctx.chat_uri.clone();
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

    /// bjoin of `uids`, at most 200 rooms per command as perch allows; returns how many
    /// rooms were entered.
    pub async fn bjoin(&mut self, uids: &[String]) -> Result<usize, ClientError> {
        let mut entered = 0;
        for chunk in uids.chunks(BJOIN_CHUNK) {
            self.envid += 1;
            let envid = self.envid;
            let body = xccos::bjoin(envid, &self.ctx.domain, chunk);
            let started = now_ns();
            let reply = self.command(envid, &body, "bjoin").await?;
            let done = now_ns();
            let metrics = self.ctx.metrics.clone();
            Metrics::mark(&metrics.join_first_ns, &metrics.join_last_ns, started, done);
            self.samples.record(&metrics, Latency::Join, started, done);
            match reply.code.as_deref() {
                Some("200") => {}
                other => {
                    return Err(ClientError::Xccos {
                        what: "bjoin",
                        code: other.unwrap_or("none").to_owned(),
                    });
                }
            }
            Metrics::add(&metrics.joins, reply.joined as u64);
            if metrics.in_window(done) {
                Metrics::add(&metrics.joins_in_window, reply.joined as u64);
            }
            Metrics::add(&metrics.join_failures, reply.failed as u64);
            metrics.errors_n("join refused (fib)", reply.failed as u64);
            entered += reply.joined;
        }
        self.entered += entered;
        Ok(entered)
    }

    /// A `cmd:bccontext` for `room_uid`, waiting for its `rpl:bccontext`: the page of
    /// history it carried (`None` from a server that echoes commands, like the null
    /// responder). A code other than 200 is an error.
    pub async fn bccontext(
        &mut self,
        room_uid: &str,
        query: &xccos::Bcq,
    ) -> Result<Option<xccos::HistoryPage>, ClientError> {
        self.envid += 1;
        let envid = self.envid;
        let body = xccos::bccontext(envid, &self.ctx.domain, room_uid, query);
        let reply = self.command(envid, &body, "bccontext").await?;
        match reply.code.as_deref() {
            Some("200") => Ok(reply.history),
            other => Err(ClientError::Xccos {
                what: "bccontext",
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
        let deadline = Instant::now() + self.ctx.timeout;
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

    /// Queues a post to `room_uid`, its send time in its text. `audience`: the clients that
    /// should receive it (the author's echo included) once it is acknowledged. Once the
    /// window has closed for posts nothing is sent and `false` returned: the drain waits
    /// only for posts that were counted before it began.
    pub fn post(&mut self, room_uid: &str, audience: u64) -> Result<bool, ClientError> {
        let ctx = self.ctx.clone();
        let open = ctx.posting.read().unwrap_or_else(|e| e.into_inner());
        if !*open {
            return Ok(false);
        }
        self.queue_post(room_uid, audience)?;
        Ok(true)
    }

    /// Queues a post whether or not the window is open; returns its CSeq.
    fn queue_post(&mut self, room_uid: &str, audience: u64) -> Result<u32, ClientError> {
        self.posts_sent += 1;
        self.envid += 1;
        let sent = now_ns();
        let text = xccos::post_text(
            sent,
            self.index,
            self.posts_sent,
            self.ctx.post_size,
            &mut self.words,
        );
        let uri = xccos::room_uri(&self.ctx.domain, room_uid);
        let body = xccos::grpchat(self.envid, &uri, &self.aor, &text);
        let cseq = self.queue_info(&body)?;
        self.posts.insert(cseq, (sent, audience));
        let metrics = self.metrics();
        Metrics::add(&metrics.posts_sent, 1);
        if metrics.in_window(sent) {
            Metrics::add(&metrics.posts_in_window, 1);
        }
        Ok(cseq)
    }

    /// Posts to `room_uid` and waits, within the request timeout, for its SIP 200 and for
    /// its delivery back to us (the author's echo: perch sends every post to everyone in
    /// the room, its author included). The post counts like any other (acked, expected
    /// and received deliveries), except that it is sent even once the window has closed:
    /// its caller waits for it.
    pub async fn post_confirmed(&mut self, room_uid: &str) -> Result<(), ClientError> {
        let cseq = self.queue_post(room_uid, 1)?;
        let sent_ns = self.posts.get(&cseq).map_or(0, |(sent, _)| *sent);
        self.watched = Some(Watched {
            cseq,
            sent_ns,
            status: None,
            echoed: false,
        });
        let deadline = Instant::now() + self.ctx.timeout;
        let acked = self
            .wait_for(deadline, "post ack", |c| {
                c.watched.is_some_and(|w| w.status.is_some())
            })
            .await;
        let status = self.watched.and_then(|w| w.status);
        let outcome = match (acked, status) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(200)) => {
                self.wait_for(deadline, "post echo", |c| {
                    c.watched.is_some_and(|w| w.echoed)
                })
                .await
            }
            (Ok(()), code) => Err(ClientError::Status {
                what: "post",
                code: code.unwrap_or(0),
            }),
        };
        self.watched = None;
        outcome
    }

    pub fn posts_in_flight(&self) -> usize {
        self.posts.len()
    }

    /// Gives up on posts unanswered for longer than the request timeout.
    pub fn expire_posts(&mut self) {
        let limit = u64::try_from(self.ctx.timeout.as_nanos()).unwrap_or(u64::MAX);
        let now = now_ns();
        let before = self.posts.len();
        self.posts
            .retain(|_, (sent, _)| now.saturating_sub(*sent) <= limit);
        let expired = (before - self.posts.len()) as u64;
        if expired > 0 {
            let metrics = self.metrics();
            Metrics::add(&metrics.posts_failed, expired);
            metrics.errors_n("timeout: post ack", expired);
        }
    }

    /// Waits until `done` holds, answering and counting whatever arrives meanwhile.
    async fn wait_for(
        &mut self,
        deadline: Instant,
        what: &'static str,
        done: impl Fn(&Self) -> bool,
    ) -> Result<(), ClientError> {
        let deadline = deadline.min(self.ctx.hard_deadline);
        loop {
            if done(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout(what));
            }
            self.pump(deadline, None).await?;
        }
    }

    /// Sends what is queued, then waits until bytes arrive, `until` passes, or the run's
    /// phase changes; handles whatever arrived.
    pub async fn pump(
        &mut self,
        until: Instant,
        phase: Option<&mut watch::Receiver<Phase>>,
    ) -> Result<(), ClientError> {
        self.conn.flush().await?;
        let until = until.min(self.ctx.hard_deadline);
        let phase_changed = async {
            match phase {
                // A closed channel means the coordinator is gone: the run is over.
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            read = self.conn.read_some() => {
                read?;
                self.process()?;
            }
            _ = tokio::time::sleep_until(until.into()) => {}
            _ = phase_changed => {}
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
        // A BYE from the server was counted in `handle`; the next request on the dialog
        // fails with `DialogEnded`, and posts still unanswered count as timeouts.
        drained?;
        Ok(())
    }

    fn handle(&mut self, event: Event) {
        let metrics = self.ctx.metrics.clone();
        match event {
            Event::Response {
                cseq,
                method,
                code,
                to,
                challenges,
            } => {
                if code < 200 {
                    return;
                }
                if method == Method::Info
                    && let Some((sent, audience)) = self.posts.remove(&cseq)
                {
                    if let Some(watched) = self.watched.as_mut().filter(|w| w.cseq == cseq) {
                        watched.status = Some(code);
                    }
                    let now = now_ns();
                    if code == 200 {
                        Metrics::add(&metrics.posts_acked, 1);
                        Metrics::add(&metrics.expected_deliveries, audience);
                        if metrics.in_window(now) {
                            Metrics::add(&metrics.acks_in_window, 1);
                        }
                        self.samples.record(&metrics, Latency::Ack, sent, now);
                    } else {
                        Metrics::add(&metrics.posts_failed, 1);
                        metrics.error(&format!("status {code} (post)"));
                    }
                    return;
                }
                if let Some(answer) = self.answers.get_mut(&cseq) {
                    answer.code = Some(code);
                    answer.to = to;
                    answer.challenges = challenges;
                }
            }
            Event::Unverified {
                error,
                cseq,
                method,
                code,
            } => {
                // A final answer fails the request it answers; anything else is counted.
                if code.is_some_and(|code| code >= 200) {
                    if method == Method::Info && self.posts.remove(&cseq).is_some() {
                        Metrics::add(&metrics.posts_failed, 1);
                        metrics.error(&signature_kind("post", error));
                        return;
                    }
                    // Counted where the request fails (ClientError::Signature).
                    if let Some(answer) = self.answers.get_mut(&cseq) {
                        answer.code = code;
                        answer.unverified = Some(error);
                        return;
                    }
                }
                let what = match code {
                    Some(_) => format!("answer to {}", method.as_str()),
                    None => format!("{} from server", method.as_str()),
                };
                metrics.error(&signature_kind(&what, error));
            }
            Event::Request {
                method: Method::Info,
                body,
            } => match xccos::classify(&body) {
                Incoming::Delivery { sent_ns } => {
                    if let Some(watched) = self.watched.as_mut().filter(|w| w.sent_ns == sent_ns) {
                        watched.echoed = true;
                    }
                    let now = now_ns();
                    Metrics::add(&metrics.deliveries, 1);
                    if metrics.in_window(now) {
                        Metrics::add(&metrics.deliveries_in_window, 1);
                    }
                    self.samples.delivered(&metrics, sent_ns, now);
                }
                Incoming::Reply {
                    envid,
                    code,
                    joined,
                    failed,
                } => {
                    if let Some(slot) = self.replies.get_mut(&envid) {
                        *slot = Some(Reply {
                            code,
                            joined,
                            failed,
                            history: xccos::history_page(&body),
                        });
                    }
                }
                Incoming::ForeignDelivery | Incoming::Notice | Incoming::Other => {}
            },
            Event::Request {
                method: Method::Bye,
                ..
            } => {
                self.dialog = None;
                metrics.error("dialog ended by server");
            }
            Event::Request { .. } => {}
        }
    }

    /// The end of the run: unanswered posts are failures; samples go to the histograms.
    pub fn finish(&mut self) {
        let open = self.posts.len() as u64;
        if open > 0 {
            let metrics = self.ctx.metrics.clone();
            Metrics::add(&metrics.posts_failed, open);
            metrics.errors_n("timeout: post ack", open);
            self.posts.clear();
        }
        let metrics = self.ctx.metrics.clone();
        self.samples.flush(&metrics);
    }

    /// How long to wait between posts for a given per-client rate.
    pub fn interval(rate_per_s: f64) -> Duration {
        if rate_per_s <= 0.0 {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs_f64(1.0 / rate_per_s)
        }
    }
}
