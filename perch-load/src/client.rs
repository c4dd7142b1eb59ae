//! A load client: the library's SIPE-like client (`perch::lync::client`, the kit `perch
//! check` and the tests use too) with what a load run adds: it counts what it sees into
//! the run's [`Metrics`], times sign-ins, joins, acknowledgements and deliveries, writes
//! posts of generated text carrying their send time, and follows the run's phases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use perch::lync::client::client::{BJOIN_CHUNK, signature_kind};
use perch::lync::client::{self as kit, Event, Observer, SignIn};
use perch::lync::sip::Method;
use tokio::sync::watch;

pub use perch::lync::client::{ClientError, RegisterAttempt};

use crate::random::Random;
use crate::run::{Phase, RunContext};
use crate::stats::{Latency, Metrics, Samples, now_ns};
use crate::xccos::{self, Incoming};

/// One post followed to its acknowledgement and its echo.
#[derive(Debug, Clone, Copy)]
struct Watched {
    cseq: u32,
    sent_ns: u64,
    status: Option<u16>,
    echoed: bool,
}

/// What the library client hands on, counted: post answers, deliveries, refused
/// signatures, the server's BYE.
struct Counting {
    metrics: Arc<Metrics>,
    /// Outstanding posts: CSeq → send time and the deliveries the post will owe.
    posts: HashMap<u32, (u64, u64)>,
    samples: Samples,
    /// The post [`Client::post_confirmed`] waits for.
    watched: Option<Watched>,
}

impl Observer for Counting {
    fn event(&mut self, event: Event) {
        let metrics = self.metrics.clone();
        match event {
            Event::Response {
                cseq, method, code, ..
            } => {
                if code < 200 || method != Method::Info {
                    return;
                }
                let Some((sent, audience)) = self.posts.remove(&cseq) else {
                    return;
                };
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
            }
            Event::Unverified {
                error,
                cseq,
                method,
                code,
            } => {
                if code.is_some_and(|code| code >= 200)
                    && method == Method::Info
                    && self.posts.remove(&cseq).is_some()
                {
                    Metrics::add(&metrics.posts_failed, 1);
                    metrics.error(&signature_kind("post", error));
                    return;
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
            } => {
                if xccos::classify(&body) != Incoming::Post {
                    return;
                }
                // Somebody else's post (not this tool's) carries no send time.
                let Some(sent_ns) = xccos::sent_time(&body) else {
                    return;
                };
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
            Event::Request {
                method: Method::Bye,
                ..
            } => metrics.error("dialog ended by server"),
            Event::Request { .. } => {}
        }
    }
}

pub struct Client {
    inner: kit::Client<Counting>,
    ctx: Arc<RunContext>,
    pub index: usize,
    /// Rooms entered by bjoin so far.
    pub entered: usize,
    posts_sent: u64,
    counted: bool,
    /// Draws the words of this client's posts.
    words: Random,
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
        let sign_in = client.ctx.sign_in.clone();
        client.inner.register(&sign_in).await?;
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
            .inner
            .observer
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
        let settings = kit::Settings {
            domain: ctx.domain.clone(),
            chat_uri: ctx.chat_uri.clone(),
            timeout: ctx.timeout,
            deadline: Some(ctx.hard_deadline),
            label: format!("pl{index}"),
        };
        let counting = Counting {
            metrics: ctx.metrics.clone(),
            posts: HashMap::new(),
            samples: Samples::default(),
            watched: None,
        };
        let inner = kit::Client::connect(
            ctx.connector.kit(),
            ctx.connector.source_for(index),
            settings,
            &aor,
            counting,
        )
        .await?;
        Ok(Client {
            inner,
            ctx,
            index,
            entered: 0,
            posts_sent: 0,
            counted: false,
            words: Random::new(index as u64),
        })
    }

    /// From now on every request carries a Via branch of its own (RFC 3261), as a client
    /// that is not SIPE would send it.
    pub fn with_branches(mut self) -> Self {
        self.inner = self.inner.with_branches();
        self
    }

    /// One REGISTER exchange with `sign_in`, whatever perch answers (see
    /// `kit::Client::register_attempt`). Does not count a login.
    pub async fn register_attempt(
        &mut self,
        sign_in: &SignIn,
    ) -> Result<RegisterAttempt, ClientError> {
        self.inner.register_attempt(sign_in).await
    }

    /// INVITE the chat endpoint, then ACK its 200: the dialog every command travels on.
    pub async fn open_dialog(&mut self) -> Result<(), ClientError> {
        self.inner.open_dialog().await?;
        if !self.counted {
            // A session is a connection with a chat dialog, however often it reopens one.
            self.counted = true;
            Metrics::add(&self.ctx.metrics.sessions, 1);
        }
        Ok(())
    }

    /// Ends the chat dialog with a BYE (perch then takes us out of every room).
    pub async fn close_dialog(&mut self) -> Result<(), ClientError> {
        self.inner.close_dialog().await
    }

    /// bjoin of `uids`, at most 200 rooms per command as perch allows; returns how many
    /// rooms were entered.
    pub async fn bjoin(&mut self, uids: &[String]) -> Result<usize, ClientError> {
        let mut entered = 0;
        for chunk in uids.chunks(BJOIN_CHUNK) {
            let started = now_ns();
            let reply = self.inner.bjoin(chunk).await?;
            let done = now_ns();
            let metrics = self.ctx.metrics.clone();
            Metrics::mark(&metrics.join_first_ns, &metrics.join_last_ns, started, done);
            self.inner
                .observer
                .samples
                .record(&metrics, Latency::Join, started, done);
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
        let reply = self.inner.bccontext(room_uid, query).await?;
        Ok(xccos::history_page(&reply.body))
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
        let sent = now_ns();
        let text = xccos::post_text(
            sent,
            self.index,
            self.posts_sent,
            self.ctx.post_size,
            &mut self.words,
        );
        let cseq = self.inner.queue_post(room_uid, &text)?;
        self.inner.observer.posts.insert(cseq, (sent, audience));
        let metrics = &self.ctx.metrics;
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
        let observer = &mut self.inner.observer;
        let sent_ns = observer.posts.get(&cseq).map_or(0, |(sent, _)| *sent);
        observer.watched = Some(Watched {
            cseq,
            sent_ns,
            status: None,
            echoed: false,
        });
        let deadline = Instant::now() + self.ctx.timeout;
        let acked = self
            .inner
            .wait_for(deadline, "post ack", |c| {
                c.observer.watched.is_some_and(|w| w.status.is_some())
            })
            .await;
        let status = self.inner.observer.watched.and_then(|w| w.status);
        let outcome = match (acked, status) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(200)) => {
                self.inner
                    .wait_for(deadline, "post echo", |c| {
                        c.observer.watched.is_some_and(|w| w.echoed)
                    })
                    .await
            }
            (Ok(()), code) => Err(ClientError::Status {
                what: "post",
                code: code.unwrap_or(0),
            }),
        };
        self.inner.observer.watched = None;
        outcome
    }

    pub fn posts_in_flight(&self) -> usize {
        self.inner.observer.posts.len()
    }

    /// Gives up on posts unanswered for longer than the request timeout.
    pub fn expire_posts(&mut self) {
        let limit = u64::try_from(self.ctx.timeout.as_nanos()).unwrap_or(u64::MAX);
        let now = now_ns();
        let posts = &mut self.inner.observer.posts;
        let before = posts.len();
        posts.retain(|_, (sent, _)| now.saturating_sub(*sent) <= limit);
        let expired = (before - posts.len()) as u64;
        if expired > 0 {
            let metrics = &self.ctx.metrics;
            Metrics::add(&metrics.posts_failed, expired);
            metrics.errors_n("timeout: post ack", expired);
        }
    }

    /// Sends what is queued, then waits until bytes arrive, `until` passes, or the run's
    /// phase changes; handles whatever arrived.
    pub async fn pump(
        &mut self,
        until: Instant,
        phase: Option<&mut watch::Receiver<Phase>>,
    ) -> Result<(), ClientError> {
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
        self.inner.pump(until, phase_changed).await
    }

    /// The end of the run: unanswered posts are failures; samples go to the histograms.
    pub fn finish(&mut self) {
        let metrics = self.ctx.metrics.clone();
        let observer = &mut self.inner.observer;
        let open = observer.posts.len() as u64;
        if open > 0 {
            Metrics::add(&metrics.posts_failed, open);
            metrics.errors_n("timeout: post ack", open);
            observer.posts.clear();
        }
        observer.samples.flush(&metrics);
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
