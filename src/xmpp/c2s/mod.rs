//! One XMPP client stream (RFC 6120), sans-I/O: the stream header and features, STARTTLS
//! (the driver upgrades the socket, [`Output::StartTls`]), SASL, resource binding, then
//! iq, presence and message stanzas, each handed to its handler (`iq`, `muc::*`).
//!
//! Order of a stream: header → features (STARTTLS) → TLS → header → features (SASL
//! mechanisms) → SASL → header → features (bind) → bind → stanzas. Whatever a client
//! sends out of that order ends the stream with the condition RFC 6120 names for it.

mod iq;
pub mod sm;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};

use crate::core::hub::ChatError;
use crate::core::ids::{Gateway, SessionRef};
use crate::core::model::Room;
use crate::core::ports::ChatMessage;
use crate::net::outbox::Mailbox;
use crate::net::rate::TokenBucket;
use crate::net::{ConnectionInfo, Deferred, Output, Retention, Transport};
use crate::xml::Element;
use crate::xmpp::XmppShared;
use crate::xmpp::jid::Jid;
use crate::xmpp::muc;
use crate::xmpp::resume::{self, Claim, Parked};
use crate::xmpp::sasl::{self, Exchange, Mechanism, Step};
use crate::xmpp::stanza::{
    self, ErrorType, NS_BIND, NS_SASL, NS_SESSION, NS_SM, NS_TLS, StanzaError,
};
use crate::xmpp::stream::{
    self, JABBER_CLIENT, STREAMS_NS, ServerHeader, StreamEvent, StreamFramer,
};

/// SASL attempts one stream may make before it is closed.
const MAX_SASL_FAILURES: u32 = 3;
/// How long a resumption waits for the session's old connection to close and hand over.
const TAKEOVER_WAIT: Duration = Duration::from_secs(10);
/// Deliveries held while a join's history is read, so live traffic follows the history
/// and the subject (XEP-0045 §7.2.15); past this many bytes they go out unheld.
const MAX_HELD_BYTES: usize = 256 * 1024;

/// The result of work a stream waits for.
pub enum Answer {
    /// The user looked up and the exchange's check made, off the async threads.
    Sasl(Box<Exchange>, Step),
    /// The check could not run (its task failed).
    SaslLost,
    /// A groupchat message stored (or refused): a refusal goes back to the sender.
    Posted {
        stanza: Element,
        result: Result<(), ChatError>,
    },
    /// The history a join asked for.
    JoinHistory {
        room_uid: String,
        request: muc::presence::HistoryRequest,
        result: HistoryResult,
    },
    /// An affiliation change saved (or refused).
    Administered {
        iq: Element,
        /// What the answer carries (a created room's address).
        result: Result<Option<Element>, crate::core::service::ServiceError>,
    },
    /// Invitations not offered yet, after the stream bound.
    Invitations(Vec<(i64, Arc<Room>)>),
    /// One page of an archive query.
    Archive {
        iq: Element,
        query: muc::mam::ArchiveQuery,
        result: HistoryResult,
    },
    /// A resumed session's old connection handed it over (or did not in time).
    TakenOver {
        previd: String,
        h: u32,
        parked: Option<Box<Parked>>,
    },
}

pub type HistoryResult = Result<(Arc<Room>, Vec<Arc<ChatMessage>>), ChatError>;

pub struct C2s {
    pub(crate) shared: Arc<XmppShared>,
    info: ConnectionInfo,
    framer: StreamFramer,
    secure: bool,
    /// The canonical user once SASL succeeded.
    pub(crate) user: Option<String>,
    /// The full JID once bound, and the hub's session of it (both set by `bind_to`).
    pub(crate) jid: Option<Jid>,
    session: Option<SessionRef>,
    sasl: Option<Box<Exchange>>,
    sasl_failures: u32,
    outputs: Vec<Output<Answer>>,
    next_deferred: u64,
    /// A `<stream:error>` or the stream's end went out: nothing more is read.
    ended: bool,
    /// `<proceed/>` went out: the bytes after `<starttls/>` belong to TLS.
    upgrading: bool,
    /// Stanzas of this stream (the user's across streams: `shared.user_stanzas`).
    rate: TokenBucket,
    /// XEP-0198 once enabled (or resumed).
    sm: Option<sm::StreamManagement>,
    /// The resumption id, when the session may be resumed.
    resume_id: Option<String>,
    /// How long the session waits to be resumed once its connection drops.
    resume_wait: Duration,
    /// A `<resume/>` waits for the session's old connection.
    resuming: bool,
    /// Joins whose history is being read; meanwhile deliveries wait in `held`.
    joins_reading: u32,
    held: Vec<Bytes>,
    held_bytes: usize,
    /// Whether perch's stream header went out on the current stream.
    header_sent: bool,
}

impl C2s {
    pub fn new(shared: Arc<XmppShared>, info: ConnectionInfo) -> Self {
        let settings = &shared.settings;
        let rate = TokenBucket::new(settings.stanzas_per_second, settings.stanza_burst);
        Self {
            framer: StreamFramer::new(shared.settings.limits),
            shared,
            secure: info.transport == Transport::Tls,
            info,
            user: None,
            jid: None,
            session: None,
            sasl: None,
            sasl_failures: 0,
            outputs: Vec::new(),
            next_deferred: 0,
            ended: false,
            upgrading: false,
            rate,
            sm: None,
            resume_id: None,
            resume_wait: Duration::ZERO,
            resuming: false,
            joins_reading: 0,
            held: Vec::new(),
            held_bytes: 0,
            header_sent: false,
        }
    }

    /// The session the hub knows this stream by: its full JID on its connection. Made once
    /// at binding (every post and join names it; a clone shares the JID text).
    pub(crate) fn session(&self) -> Option<SessionRef> {
        self.session.clone()
    }

    /// Binds the stream to `jid`: from now on its stanzas are the session's.
    pub(crate) fn bind_to(&mut self, jid: Jid) {
        self.session = Some(SessionRef {
            gateway: Gateway::Xmpp,
            connection: self.info.id,
            stream: Arc::from(jid.to_string()),
        });
        self.jid = Some(jid);
    }

    /// The bound full JID as text ("" before binding).
    pub(crate) fn client(&self) -> String {
        self.session
            .as_ref()
            .map(|session| session.stream.to_string())
            .unwrap_or_default()
    }

    /// Sends a stanza or a nonza; stanzas are counted (and kept until acknowledged) for
    /// XEP-0198.
    pub(crate) fn send(&mut self, element: &Element) {
        let mut out = String::new();
        stream::render_built(&mut out, element);
        let bytes = Bytes::from(out);
        let is_stanza = matches!(element.namespace.as_str(), "" | JABBER_CLIENT)
            && matches!(element.name.as_str(), "message" | "presence" | "iq");
        if is_stanza {
            self.send_stanza(bytes);
        } else {
            self.outputs.push(Output::Send(bytes));
        }
    }

    /// One stanza out; with resumption on it is kept until the client acknowledges it, and
    /// the client is asked to acknowledge as the queue grows.
    fn send_stanza(&mut self, stanza: Bytes) {
        let kept = match self.sm.as_mut().and_then(|sm| sm.unacked.as_mut()) {
            Some(unacked) => unacked.push(stanza.clone()),
            None => Ok(false),
        };
        self.outputs.push(Output::Send(stanza));
        match kept {
            Ok(false) => {}
            Ok(true) => {
                let mut out = String::new();
                stream::render_built(&mut out, &Element::new("r").with_namespace(NS_SM));
                self.outputs.push(Output::Send(Bytes::from(out)));
            }
            Err(error) => {
                tracing::info!(
                    connection = self.info.id,
                    ?error,
                    "XMPP client does not acknowledge"
                );
                self.stream_error("resource-constraint");
            }
        }
    }

    /// An error reply to `request`, from what it was addressed to.
    pub(crate) fn refuse(&mut self, request: &Element, error: &StanzaError) {
        if request.attr("type") == Some("error") {
            // Never answer an error with an error (RFC 6120 §8.3.1).
            return;
        }
        let client = self.client();
        let reply = stanza::error_reply(request, &client, error);
        self.send(&reply);
    }

    /// A join's history is being read: deliveries wait until it has been sent.
    pub(crate) fn hold_deliveries(&mut self) {
        self.joins_reading += 1;
    }

    /// A join's history and subject went out: what was held follows, once no other join
    /// waits.
    pub(crate) fn release_deliveries(&mut self) {
        self.joins_reading = self.joins_reading.saturating_sub(1);
        if self.joins_reading == 0 {
            self.flush_held();
        }
    }

    fn flush_held(&mut self) {
        self.held_bytes = 0;
        for delivery in std::mem::take(&mut self.held) {
            self.send_stanza(delivery);
        }
    }

    pub(crate) fn defer(&mut self, work: impl Future<Output = Answer> + Send + 'static) {
        self.next_deferred += 1;
        self.outputs.push(Output::Await(Deferred {
            id: self.next_deferred,
            work: Box::pin(work),
        }));
    }

    /// Ends the stream with `condition` (RFC 6120 §4.9.3).
    fn stream_error(&mut self, condition: &str) {
        tracing::debug!(connection = self.info.id, peer = %self.info.peer, condition, "XMPP stream error");
        // An error before perch's own header still opens the stream first (RFC 6120
        // §4.9.1.2), so the client can read it.
        if !self.header_sent {
            self.send_header();
        }
        let mut out = String::new();
        stream::render_built(&mut out, &stream::stream_error(condition));
        stream::render_close(&mut out);
        self.outputs.push(Output::Send(Bytes::from(out)));
        self.outputs.push(Output::Close);
        self.ended = true;
    }

    fn on_event(&mut self, event: StreamEvent, now: Instant) {
        match event {
            StreamEvent::Open(header) => self.open(header.to.as_deref()),
            StreamEvent::Close => {
                let mut out = String::new();
                stream::render_close(&mut out);
                self.outputs.push(Output::Send(Bytes::from(out)));
                self.outputs.push(Output::Close);
                self.ended = true;
            }
            StreamEvent::Stanza(element) => self.on_element(element, now),
        }
    }

    /// The stream header, then the features of where negotiation stands.
    fn send_header(&mut self) {
        let domain = self.shared.settings.domain.clone();
        let id = crate::core::ids::new_room_uid();
        let mut out = String::new();
        stream::render_header(
            &mut out,
            &ServerHeader {
                id: &id,
                from: &domain,
                to: None,
                lang: "en",
            },
        );
        self.outputs.push(Output::Send(Bytes::from(out)));
        self.header_sent = true;
    }

    fn open(&mut self, to: Option<&str>) {
        let domain = self.shared.settings.domain.clone();
        self.send_header();
        if to.is_none_or(|to| !to.eq_ignore_ascii_case(&domain)) {
            self.stream_error("host-unknown");
            return;
        }
        let mut features = Element::new("features").with_namespace(STREAMS_NS);
        if self.user.is_none() {
            if !self.secure {
                let mut starttls = Element::new("starttls").with_namespace(NS_TLS);
                if self.shared.settings.require_tls {
                    starttls = starttls.with_child(Element::new("required"));
                }
                features = features.with_child(starttls);
            }
            if self.secure || !self.shared.settings.require_tls {
                let mut mechanisms = Element::new("mechanisms").with_namespace(NS_SASL);
                for mechanism in Mechanism::offered(self.secure) {
                    mechanisms = mechanisms
                        .with_child(Element::new("mechanism").with_text(mechanism.name()));
                }
                features = features.with_child(mechanisms);
            }
        } else {
            features = features
                .with_child(Element::new("bind").with_namespace(NS_BIND))
                .with_child(Element::new("sm").with_namespace(NS_SM))
                .with_child(
                    Element::new("session")
                        .with_namespace(NS_SESSION)
                        .with_child(Element::new("optional")),
                );
        }
        self.send(&features);
    }

    fn on_element(&mut self, element: Element, now: Instant) {
        match (element.namespace.as_str(), element.name.as_str()) {
            (NS_TLS, "starttls") => self.starttls(),
            (NS_SASL, "auth") => self.auth(&element, now),
            (NS_SASL, "response" | "abort") => self.sasl_response(&element, now),
            (NS_SM, _) => self.stream_management(&element),
            (JABBER_CLIENT, "iq" | "message" | "presence") => {
                // Nothing but binding before a resource is bound (nor while a resumption
                // waits), nothing before sign-in.
                let unbound = self.jid.is_none() && (!iq::is_bind(&element) || self.resuming);
                if self.user.is_none() || unbound {
                    self.stream_error("not-authorized");
                } else {
                    if let Some(sm) = &mut self.sm {
                        sm.received();
                    }
                    self.stanza(element, now);
                }
            }
            _ => self.stream_error("unsupported-stanza-type"),
        }
    }

    /// XEP-0198: `<enable/>` after binding (with resumption when asked for and on),
    /// `<a h=…/>` for every `<r/>`, the client's `<a/>` releasing what perch kept, and
    /// `<resume/>` in place of binding on a new stream.
    fn stream_management(&mut self, element: &Element) {
        match element.name.as_str() {
            "enable" if self.jid.is_some() && self.sm.is_none() => self.enable(element),
            "r" if self.sm.is_some() => {
                let h = self.sm.as_ref().map_or(0, |sm| sm.handled).to_string();
                self.send(&Element::new("a").with_namespace(NS_SM).with_attr("h", h));
            }
            "a" if self.sm.is_some() => {
                let acknowledged = element.attr("h").and_then(|h| h.parse::<u32>().ok());
                let Some(h) = acknowledged else {
                    return self.stream_error("invalid-xml");
                };
                self.acknowledged(h);
            }
            "resume" if self.user.is_some() && self.jid.is_none() && !self.resuming => {
                self.resume(element);
            }
            "enable" | "resume" => {
                let condition = if element.name == "resume" && self.user.is_some() {
                    "item-not-found"
                } else {
                    "unexpected-request"
                };
                self.sm_failed(condition, None);
            }
            _ => self.stream_error("unsupported-stanza-type"),
        }
    }

    fn sm_failed(&mut self, condition: &str, h: Option<u32>) {
        let mut failed = Element::new("failed")
            .with_namespace(NS_SM)
            .with_child(Element::new(condition).with_namespace(stanza::NS_STANZAS));
        if let Some(h) = h {
            failed = failed.with_attr("h", h.to_string());
        }
        self.send(&failed);
    }

    fn enable(&mut self, element: &Element) {
        let asked = matches!(element.attr("resume"), Some("true" | "1"));
        let resumption = self.shared.resumption.clone();
        let id = match (asked, &self.user, &self.session) {
            (true, Some(user), Some(session)) => resumption.enable(user, session),
            _ => None,
        };
        let mut enabled = Element::new("enabled").with_namespace(NS_SM);
        let buffer = id.as_ref().map(|_| resumption.buffer_bytes);
        if let Some(id) = &id {
            // The client may ask for less time than perch allows, never for more.
            let wait = element
                .attr("max")
                .and_then(|max| max.parse::<u64>().ok())
                .map_or(resumption.max_wait, |max| {
                    resumption.max_wait.min(Duration::from_secs(max))
                });
            self.resume_wait = wait;
            enabled = enabled
                .with_attr("id", id.clone())
                .with_attr("resume", "true")
                .with_attr("max", wait.as_secs().to_string());
        }
        self.resume_id = id;
        self.sm = Some(sm::StreamManagement::new(buffer));
        self.send(&enabled);
    }

    fn acknowledged(&mut self, h: u32) {
        let checked = match self.sm.as_mut().and_then(|sm| sm.unacked.as_mut()) {
            Some(unacked) => unacked.acknowledge(h),
            // Nothing kept to release.
            None => Ok(()),
        };
        if let Err(error) = checked {
            tracing::info!(
                connection = self.info.id,
                ?error,
                "XMPP acknowledgement out of range"
            );
            self.stream_error("undefined-condition");
        }
    }

    /// `<resume previd=… h=…/>`: the user's parked session comes back on this stream, or
    /// its live connection is asked to hand it over first.
    fn resume(&mut self, element: &Element) {
        let (Some(previd), Some(h)) = (
            element.attr("previd").map(str::to_owned),
            element.attr("h").and_then(|h| h.parse::<u32>().ok()),
        ) else {
            return self.sm_failed("bad-request", None);
        };
        let Some(user) = self.user.clone() else {
            return self.sm_failed("unexpected-request", None);
        };
        match self
            .shared
            .resumption
            .claim(&previd, &user, &self.shared.outboxes)
        {
            Claim::Ready(parked) => self.resumed(&previd, h, parked),
            Claim::Waiting(handover) => {
                self.resuming = true;
                self.defer(async move {
                    let parked = tokio::time::timeout(TAKEOVER_WAIT, handover)
                        .await
                        .ok()
                        .and_then(Result::ok);
                    Answer::TakenOver { previd, h, parked }
                });
            }
            Claim::NotFound => self.sm_failed("item-not-found", None),
        }
    }

    /// The session is this stream's now: `<resumed/>`, then everything the client has not
    /// acknowledged, then what arrived while it was away; later deliveries follow.
    fn resumed(&mut self, previd: &str, h: u32, mut parked: Box<Parked>) {
        let shared = self.shared.clone();
        let outboxes = &shared.outboxes;
        // From here deliveries to the session come to this connection; those queued before
        // are in the old mailbox, collected next, so nothing is lost or reordered.
        let redirected = outboxes.redirect(parked.session.connection, self.info.id);
        let collected = parked.collect();
        let acknowledged = match parked.sm.unacked.as_mut() {
            Some(unacked) => unacked.acknowledge(h),
            None => Ok(()),
        };
        let Parked {
            user,
            jid,
            session,
            sm,
            mailbox,
            ..
        } = *parked;
        drop(mailbox);
        if !redirected || collected.is_err() || acknowledged.is_err() {
            tracing::info!(connection = self.info.id, %session, ?collected, ?acknowledged, "XMPP resumption failed");
            crate::net::metrics::metrics().sessions_not_resumed.inc();
            resume::end_session(&user, &session, &shared.core, outboxes);
            let handled = sm.handled;
            return self.sm_failed("item-not-found", Some(handled));
        }
        tracing::info!(connection = self.info.id, %session, "XMPP session resumed");
        crate::net::metrics::metrics().sessions_resumed.inc();
        shared.resumption.relive(previd, &user, &session);
        self.session = Some(session);
        self.jid = Some(jid);
        self.resume_id = Some(previd.to_owned());
        let answer = Element::new("resumed")
            .with_namespace(NS_SM)
            .with_attr("h", sm.handled.to_string())
            .with_attr("previd", previd);
        self.send(&answer);
        // Sent again as they are: they stay in the queue until acknowledged.
        if let Some(unacked) = &sm.unacked {
            self.outputs
                .extend(unacked.pending().cloned().map(Output::Send));
        }
        self.sm = Some(sm);
    }

    fn starttls(&mut self) {
        if self.secure || self.user.is_some() {
            self.stream_error("policy-violation");
            return;
        }
        self.send(&Element::new("proceed").with_namespace(NS_TLS));
        self.outputs.push(Output::StartTls);
        self.upgrading = true;
    }

    fn auth(&mut self, element: &Element, now: Instant) {
        if self.user.is_some() || self.sasl.is_some() {
            self.stream_error("policy-violation");
            return;
        }
        if !self.secure && self.shared.settings.require_tls {
            self.sasl_failure(&sasl::SaslFailure::EncryptionRequired);
            return;
        }
        let mechanism = match Mechanism::from_name(element.attr("mechanism").unwrap_or_default()) {
            Ok(mechanism) => mechanism,
            Err(failure) => return self.sasl_failure(&failure),
        };
        let initial = if element.text.is_empty() {
            None
        } else {
            match sasl::decode_payload(&element.text) {
                Ok(bytes) => Some(bytes),
                Err(failure) => return self.sasl_failure(&failure),
            }
        };
        let domain = self.shared.settings.domain.clone();
        let (exchange, step) = Exchange::start(&domain, mechanism, initial.as_deref(), self.secure);
        self.sasl_step(Box::new(exchange), step, now);
    }

    fn sasl_response(&mut self, element: &Element, now: Instant) {
        let Some(mut exchange) = self.sasl.take() else {
            self.stream_error("policy-violation");
            return;
        };
        let step = if element.name == "abort" {
            exchange.abort()
        } else {
            match sasl::decode_payload(&element.text) {
                Ok(bytes) => exchange.respond(&bytes),
                Err(failure) => {
                    let step = Step::Failure(failure);
                    return self.sasl_step(exchange, step, now);
                }
            }
        };
        self.sasl_step(exchange, step, now);
    }

    fn sasl_step(&mut self, mut exchange: Box<Exchange>, step: Step, now: Instant) {
        let peer = self.info.peer.ip();
        match step {
            Step::NeedUser { authcid } => {
                if let Some(refused) = sasl::admit(&self.shared.throttle, peer, &mut exchange, now)
                {
                    return self.sasl_step(exchange, refused, now);
                }
                let snapshot = self.shared.core.snapshot();
                let found = snapshot
                    .directory
                    .user(&authcid)
                    .map(|user| (user.credentials.clone(), user.enabled));
                // PLAIN costs a PBKDF2 run: the check is kept off the async threads.
                self.defer(async move {
                    tokio::task::spawn_blocking(move || {
                        let (credentials, enabled) = found.unwrap_or((None, false));
                        let step = exchange.user(credentials.as_ref(), enabled);
                        Answer::Sasl(exchange, step)
                    })
                    .await
                    .unwrap_or(Answer::SaslLost)
                });
            }
            Step::Challenge(data) => {
                let challenge = Element::new("challenge")
                    .with_namespace(NS_SASL)
                    .with_text(payload_text(&data));
                self.send(&challenge);
                self.sasl = Some(exchange);
            }
            Step::Success {
                ref user,
                ref additional_data,
            } => {
                sasl::record(&self.shared.throttle, peer, &exchange, &step, now);
                let mut success = Element::new("success").with_namespace(NS_SASL);
                if let Some(data) = additional_data {
                    success = success.with_text(payload_text(data));
                }
                self.send(&success);
                tracing::info!(connection = self.info.id, user = %user, addr = %self.info.peer, mechanism = exchange.mechanism().name(), "XMPP signed in");
                self.user = Some(user.clone());
                self.framer.restart();
                self.header_sent = false;
            }
            Step::Failure(ref failure) => {
                sasl::record(&self.shared.throttle, peer, &exchange, &step, now);
                self.sasl_failure(failure);
            }
        }
    }

    fn sasl_failure(&mut self, failure: &sasl::SaslFailure) {
        let mut element = Element::new("failure")
            .with_namespace(NS_SASL)
            .with_child(Element::new(failure.condition()));
        let text = failure.text();
        if !text.is_empty() {
            element = element.with_child(Element::new("text").with_text(text));
        }
        self.send(&element);
        self.sasl_failures += 1;
        if self.sasl_failures >= MAX_SASL_FAILURES {
            self.stream_error("policy-violation");
        }
    }

    /// A stanza of a signed-in stream, within the stream's and the user's rates: past them
    /// it is not acted on, and the sender hears `resource-constraint` (presence is dropped).
    fn stanza(&mut self, element: Element, now: Instant) {
        let user_over = self
            .user
            .as_deref()
            .is_some_and(|user| !self.shared.user_stanzas.allow(user, now));
        if !self.rate.allow(now) || user_over {
            if element.name != "presence" {
                let refusal = StanzaError::new(ErrorType::Wait, "resource-constraint")
                    .with_text("too many stanzas: slow down");
                self.refuse(&element, &refusal);
            }
            return;
        }
        match element.name.as_str() {
            "iq" => self.iq(element, now),
            "presence" => self.presence(element),
            _ => self.message(element),
        }
    }

    fn presence(&mut self, presence: Element) {
        let Some(to) = presence.attr("to").map(Jid::parse) else {
            // Broadcast presence: perch keeps no rosters, so there is no one to tell.
            return;
        };
        match to {
            Ok(to) if to.domain == self.shared.settings.muc_domain && to.local.is_some() => {
                muc::presence::handle(self, &presence, &to);
            }
            // Subscriptions and directed presence to users: not part of perch.
            _ => {}
        }
    }

    fn message(&mut self, message: Element) {
        let to = presence_or_message_target(&message);
        match to {
            Some(to) if to.domain == self.shared.settings.muc_domain && to.local.is_some() => {
                muc::message::handle(self, message, &to);
            }
            _ => {
                let error = StanzaError::new(ErrorType::Cancel, "service-unavailable")
                    .with_text("perch delivers messages in rooms only");
                self.refuse(&message, &error);
            }
        }
    }
}

fn presence_or_message_target(stanza: &Element) -> Option<Jid> {
    stanza.attr("to").and_then(|to| Jid::parse(to).ok())
}

/// SASL data as element text: base64, and `=` for none (RFC 6120 §6.4.2).
fn payload_text(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        BASE64.encode(data)
    }
}

impl crate::net::Connection for C2s {
    type Delivery = Bytes;
    type Answer = Answer;

    fn receive(&mut self, buffer: &mut BytesMut, now: Instant) -> bool {
        while !self.ended && !self.upgrading {
            match self.framer.next(buffer) {
                Ok(Some(event)) => self.on_event(event, now),
                Ok(None) => break,
                Err(error) => {
                    self.stream_error(error.condition());
                    return false;
                }
            }
        }
        !self.ended
    }

    fn deliver(&mut self, delivery: Bytes, _now: Instant) {
        if self.ended {
            return;
        }
        if self.joins_reading > 0 {
            if self.held_bytes + delivery.len() <= MAX_HELD_BYTES {
                self.held_bytes += delivery.len();
                self.held.push(delivery);
                return;
            }
            // Order gives way to the bound: what was held goes now, in order.
            self.flush_held();
        }
        // Every delivery is one stanza (the sink renders them so).
        self.send_stanza(delivery);
    }

    fn finish_deferred(&mut self, _id: u64, answer: Answer, now: Instant) {
        if self.ended {
            return;
        }
        match answer {
            Answer::Sasl(exchange, step) => self.sasl_step(exchange, step, now),
            Answer::SaslLost => {
                self.sasl_failure(&sasl::SaslFailure::TemporaryAuthFailure(
                    "the check could not run",
                ));
            }
            Answer::Posted { stanza, result } => muc::message::posted(self, &stanza, result),
            Answer::JoinHistory {
                room_uid,
                request,
                result,
            } => {
                muc::presence::history(self, &room_uid, &request, result);
                self.release_deliveries();
            }
            Answer::Archive { iq, query, result } => muc::mam::answer(self, &iq, &query, result),
            Answer::Administered { iq, result } => muc::admin::administered(self, &iq, result),
            Answer::Invitations(invitations) => muc::invite::send(self, &invitations),
            Answer::TakenOver { previd, h, parked } => {
                self.resuming = false;
                match parked {
                    Some(parked) => self.resumed(&previd, h, parked),
                    None => self.sm_failed("item-not-found", None),
                }
            }
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        None
    }

    fn tick(&mut self, _now: Instant) {}

    fn take_outputs(&mut self) -> Vec<Output<Answer>> {
        std::mem::take(&mut self.outputs)
    }

    fn secured(&mut self, _now: Instant) {
        self.secure = true;
        self.upgrading = false;
        self.framer.restart();
        self.header_sent = false;
    }

    fn closed(&mut self, mailbox: Mailbox<Bytes>) -> Retention {
        let shared = self.shared.clone();
        let (Some(user), Some(session), Some(jid)) =
            (self.user.clone(), self.session(), self.jid.clone())
        else {
            return Retention::Released;
        };
        // A resumed stream's own address was never the session's: only the session's stays.
        let own = self.info.id;
        if session.connection != own {
            shared.outboxes.unregister(own);
        }
        // Deliveries held for a join were never sent: a resumption sends them.
        let held = std::mem::take(&mut self.held);
        let mut sm = self.sm.take();
        let mut whole = true;
        if let Some(unacked) = sm.as_mut().and_then(|sm| sm.unacked.as_mut()) {
            whole = held
                .into_iter()
                .all(|delivery| unacked.push(delivery).is_ok());
        }
        let resumable = match (&self.resume_id, sm) {
            // A stream that ended on purpose (the client's close, a stream error) ends its
            // session; one that dropped may be resumed.
            // Not when its queue was cut off (it fell behind): deliveries were lost.
            (Some(id), Some(sm))
                if whole && !self.ended && shared.outboxes.is_registered(session.connection) =>
            {
                Some((id.clone(), sm))
            }
            _ => None,
        };
        if let Some((id, sm)) = resumable {
            let expires = Instant::now() + self.resume_wait;
            let parked = Box::new(Parked::new(
                user.clone(),
                jid,
                session.clone(),
                sm,
                mailbox,
                expires,
            ));
            match shared.resumption.park(&id, parked) {
                Ok(displaced) => {
                    tracing::debug!(connection = own, %session, "XMPP session parked for resumption");
                    resume::end_all(displaced, &shared.core, &shared.outboxes);
                    return Retention::Kept;
                }
                Err(parked) => {
                    resume::end_all(vec![parked], &shared.core, &shared.outboxes);
                    return Retention::Kept;
                }
            }
        }
        if let Some(id) = &self.resume_id {
            shared.resumption.forget(id);
        }
        if session.connection == own {
            shared.core.leave_all(&user, &session);
            Retention::Released
        } else {
            resume::end_session(&user, &session, &shared.core, &shared.outboxes);
            Retention::Kept
        }
    }
}

#[cfg(test)]
mod tests;
