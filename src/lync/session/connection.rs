//! One connection's SIP session: framing results in, bytes to write out. Owns the
//! connection's registration, its dialogs and its transactions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::lync::sip::message::salvage_response_headers;
use crate::lync::sip::response::response;
use crate::lync::sip::{Frame, FrameError, Message, Method, NameAddr, SipUri, StartLine};

use super::Outbound;
use super::dialog::Dialog;
use super::registrar::{self, Change, Registration};
use super::sipae::Security;
use super::transaction::{ClientKey, ClientTransactions, Repeat, ServerKey, ServerTransactions};
use super::{
    ConnectionInfo, DialogContext, EndpointReply, Later, Shared, SipError, random_token, uri_param,
};
use crate::net::rate::TokenBucket;

/// What a deferred request's work resolves to: the chat bodies to send after the 200, or
/// the error to answer with.
pub type Answer = Result<Vec<Bytes>, SipError>;
pub type Output = crate::net::Output<Answer>;
pub type Deferred = crate::net::Deferred<Answer>;

/// What the session remembers about a deferred request.
struct Waiting {
    key: ServerKey,
    headers: crate::lync::sip::Headers,
    call_id: String,
}

enum Handled {
    Reply(Message),
    Deferred(Later),
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, INFO, UPDATE, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, SERVICE, BENOTIFY";
const PROVISIONING_EVENT: &str = "vnd-microsoft-provisioning-v2";
const PROVISIONING_TYPE: &str = "application/vnd-microsoft-roaming-provisioning-v2+xml";

pub struct Session {
    info: ConnectionInfo,
    shared: Arc<Shared>,
    registration: Option<Registration>,
    /// MS-SIPAE: the NTLM handshake in progress and the security association, if any.
    security: Security,
    dialogs: HashMap<String, Dialog>,
    server_transactions: ServerTransactions,
    client_transactions: ClientTransactions,
    waiting: HashMap<u64, Waiting>,
    next_deferred: u64,
    rate: TokenBucket,
    outputs: Vec<Output>,
}

impl Session {
    pub fn new(info: ConnectionInfo, shared: Arc<Shared>) -> Self {
        let settings = &shared.settings;
        let rate = TokenBucket::new(settings.requests_per_second, settings.request_burst);
        let server_transactions = ServerTransactions::new(
            settings.retransmission_bytes_per_connection,
            shared.retransmissions.clone(),
        );
        Self {
            info,
            shared,
            registration: None,
            security: Security::default(),
            dialogs: HashMap::new(),
            server_transactions,
            client_transactions: ClientTransactions::default(),
            waiting: HashMap::new(),
            next_deferred: 0,
            rate,
            outputs: Vec::new(),
        }
    }

    /// The SIP framer's bounds for this connection's input.
    pub fn frame_limits(&self) -> crate::lync::sip::FrameLimits {
        self.shared.settings.frame_limits
    }

    /// The identity registered on this connection, if any.
    pub fn registered_as(&self) -> Option<&str> {
        self.registration.as_ref().map(|r| r.aor.as_str())
    }

    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    pub fn handle_frame(&mut self, frame: Frame, now: Instant) {
        match frame {
            Frame::Ping => self.outputs.push(Output::Send(Bytes::from_static(b"\r\n"))),
            Frame::Message { head, body } => match Message::parse(&head, body) {
                Ok(message) => {
                    let Some(signed) = self.check_signature(&message) else {
                        return;
                    };
                    match message.start {
                        StartLine::Request { .. } => self.handle_request(message, signed, now),
                        StartLine::Response { code, .. } => self.handle_response(&message, code),
                    }
                }
                Err(error) => {
                    tracing::debug!(connection = self.info.id, %error, "unparsable SIP message");
                    // The framing is intact, so the stream goes on after the 400.
                    self.reject_unparsable(&head, &error.into(), false);
                }
            },
        }
    }

    /// The stream cannot be framed any further: answer if a response can be formed, then close.
    pub fn handle_frame_error(&mut self, error: &FrameError) {
        tracing::info!(connection = self.info.id, %error, "closing connection: framing error");
        self.reject_unparsable(error.head(), &error.into(), true);
    }

    /// Once a security association exists, every message must carry a valid signature
    /// (MS-SIPAE §3.3.5.2). `Some(true)`: verified; `Some(false)`: no association, or a
    /// REGISTER that must authenticate afresh; `None`: refused here.
    fn check_signature(&mut self, message: &Message) -> Option<bool> {
        let Some(association) = self.security.association.as_mut() else {
            return Some(false);
        };
        let error = match association.verify(message) {
            Ok(()) => return Some(true),
            Err(error) => error,
        };
        if message.method() == Some(&Method::Register) {
            return Some(false);
        }
        tracing::info!(connection = self.info.id, %error, "message refused: MS-SIPAE signature");
        if matches!(message.start, StartLine::Request { .. })
            && message.method() != Some(&Method::Ack)
        {
            let reply = error_response(&message.headers, &SipError::Forbidden(error.to_string()));
            self.outputs.push(Output::Send(reply.encode()));
        }
        None
    }

    /// Sends a message we answer with, signed if the connection has an association.
    fn send_signed(&mut self, mut message: Message) -> Bytes {
        self.security.sign_message(&mut message);
        let bytes = message.encode();
        self.outputs.push(Output::Send(bytes.clone()));
        bytes
    }

    fn reject_unparsable(&mut self, head: &[u8], error: &SipError, close: bool) {
        match salvage_response_headers(head) {
            Some(headers) => {
                self.send_signed(error_response(&headers, error));
                if close {
                    self.outputs.push(Output::Close);
                }
            }
            None => self.outputs.push(Output::Close),
        }
    }

    fn handle_request(&mut self, mut request: Message, signed: bool, now: Instant) {
        let Ok(cseq) = request.cseq() else {
            return; // the parser guarantees a valid CSeq
        };
        let key = ServerKey {
            call_id: request.call_id().to_owned(),
            cseq: cseq.number,
            method: cseq.method.clone(),
        };
        if cseq.method == Method::Ack {
            self.ack(&request);
            return;
        }
        match self.server_transactions.retransmission(&key) {
            Repeat::New => {}
            Repeat::Answer(previous) => {
                self.outputs.push(Output::Send(previous));
                return;
            }
            Repeat::Absorb => return,
        }
        if cseq.method == Method::Benotify {
            return; // best-effort NOTIFY: never answered
        }
        if self.waiting.values().any(|w| w.key == key) {
            return; // a retransmission of a request still being worked on
        }
        let user_over = self.registration.as_ref().is_some_and(|registration| {
            !self
                .shared
                .user_requests
                .allow(registration.aor.as_str(), now)
        });
        if !self.rate.allow(now) || user_over {
            // Not stored as the transaction's answer: a retry after the pause is served.
            let busy = error_response(&request.headers, &SipError::Overloaded);
            self.send_signed(busy);
            return;
        }
        let mut after = Vec::new();
        let reply = match self.dispatch(&request, signed, now, &mut after) {
            Ok(Handled::Reply(reply)) => reply,
            Ok(Handled::Deferred(work)) => {
                self.next_deferred += 1;
                let id = self.next_deferred;
                let call_id = request.call_id().to_owned();
                // Dispatched: only its headers are still needed, to answer it.
                let headers = std::mem::take(&mut request.headers);
                self.waiting.insert(
                    id,
                    Waiting {
                        key,
                        headers,
                        call_id,
                    },
                );
                self.outputs.push(Output::Await(Deferred { id, work }));
                return;
            }
            Err(error) => error_response(&request.headers, &error),
        };
        self.complete(key, reply, after, now);
    }

    /// Sends and stores a final response, then the chat replies that follow it.
    fn complete(
        &mut self,
        key: ServerKey,
        reply: Message,
        after: Vec<(String, Bytes)>,
        now: Instant,
    ) {
        let bytes = self.send_signed(reply);
        self.server_transactions.completed(key, bytes, now);
        for (call_id, body) in after {
            self.send_info(&call_id, body, now);
        }
    }

    /// Finishes a deferred request with the outcome of its work.
    pub fn finish_deferred(&mut self, id: u64, outcome: Answer, now: Instant) {
        let Some(waiting) = self.waiting.remove(&id) else {
            return;
        };
        let (reply, after) = match outcome {
            Ok(bodies) => (
                response(&waiting.headers, 200, None),
                bodies
                    .into_iter()
                    .map(|b| (waiting.call_id.clone(), b))
                    .collect(),
            ),
            Err(error) => (error_response(&waiting.headers, &error), Vec::new()),
        };
        self.complete(waiting.key, reply, after, now);
    }

    /// A delivery from the chat core for one of this connection's dialogs.
    pub fn deliver(&mut self, outbound: Outbound, now: Instant) {
        match outbound {
            Outbound::Info { call_id, body } => self.send_info(&call_id, body, now),
            Outbound::Bye { call_id } => self.send_bye(&call_id, now),
            Outbound::Revoke => self.revoke(now),
        }
    }

    /// The user's rights ended: each dialog gets a BYE, the registration goes, and the
    /// connection closes once those are written.
    fn revoke(&mut self, now: Instant) {
        let call_ids: Vec<String> = self.dialogs.keys().cloned().collect();
        for call_id in call_ids {
            self.send_bye(&call_id, now);
        }
        self.unbind();
        self.security = Security::default();
        self.outputs.push(Output::Close);
    }

    /// Routes a request to its handler. `after` collects chat replies to send as INFO once
    /// the final response to this request has gone out.
    fn dispatch(
        &mut self,
        request: &Message,
        signed: bool,
        now: Instant,
        after: &mut Vec<(String, Bytes)>,
    ) -> Result<Handled, SipError> {
        let method = request.method().cloned().unwrap_or(Method::Ack);
        check_request_line(request)?;
        match method {
            Method::Register => return self.register(request, signed, now).map(Handled::Reply),
            Method::Options => return Ok(Handled::Reply(self.options(request))),
            Method::Info => {
                self.check_identity(request)?;
                return self.info(request, after);
            }
            _ => {}
        }
        self.check_identity(request)?;
        let reply = match method {
            Method::Invite => self.invite(request),
            Method::Bye => self.bye(request),
            Method::Update => {
                self.in_dialog(request)?;
                Ok(self.update_ok(request))
            }
            Method::Cancel => self.cancel(request),
            Method::Subscribe => self.subscribe(request),
            Method::Service | Method::Notify => {
                Ok(response(&request.headers, 200, Some(&random_token())))
            }
            Method::Publish => Err(SipError::BadEvent(
                request.headers.get("Event").unwrap_or_default().to_owned(),
            )),
            Method::Prack => Err(SipError::NoSuchDialog),
            other => Err(SipError::NotImplemented(other.to_string())),
        };
        reply.map(Handled::Reply)
    }

    /// Every request but REGISTER and OPTIONS needs a registration on this connection, and
    /// must come from the identity registered.
    fn check_identity(&self, request: &Message) -> Result<(), SipError> {
        let Some(registration) = &self.registration else {
            return Err(SipError::Forbidden(
                "not registered on this connection".into(),
            ));
        };
        let from = request
            .headers
            .get("From")
            .and_then(NameAddr::parse)
            .and_then(|n| SipUri::parse(&n.uri))
            .and_then(|u| u.aor());
        if from.as_deref() != Some(registration.aor.as_str()) {
            return Err(SipError::Forbidden(format!(
                "requests on this connection must come from {}",
                registration.aor
            )));
        }
        Ok(())
    }

    fn register(
        &mut self,
        request: &Message,
        signed: bool,
        now: Instant,
    ) -> Result<Message, SipError> {
        let (reply, change) = registrar::register(
            &self.shared,
            &self.info,
            self.registration.as_ref(),
            &mut self.security,
            signed,
            request,
            now,
        )?;
        match change {
            Change::None => {}
            Change::Registered(registration) => {
                if self.registration.is_none() {
                    tracing::info!(connection = self.info.id, user = %registration.aor, "registered");
                }
                self.registration = Some(registration);
            }
            Change::Unregistered => {
                tracing::info!(connection = self.info.id, "unregistered");
                self.end_all_dialogs();
                self.registration = None;
            }
        }
        Ok(reply)
    }

    fn options(&self, request: &Message) -> Message {
        let mut reply = response(&request.headers, 200, Some(&random_token()));
        reply.headers.push("Allow", ALLOW);
        reply.headers.push("Accept", "application/sdp, text/plain");
        reply.headers.push("Supported", "timer");
        reply
    }

    fn is_chat_endpoint(&self, uri: &str) -> bool {
        SipUri::parse(uri).and_then(|u| u.aor()).as_deref()
            == Some(self.shared.settings.chat_aor.as_str())
    }

    fn invite(&mut self, request: &Message) -> Result<Message, SipError> {
        let to = request
            .headers
            .get("To")
            .and_then(NameAddr::parse)
            .ok_or_else(|| SipError::Malformed("To is not a SIP address".into()))?;
        if to.tag().is_some() {
            // A re-INVITE refreshes an existing dialog.
            let dialog = self.in_dialog(request)?;
            let local_tag = dialog.local_tag.clone();
            return Ok(self.invite_ok(request, &local_tag));
        }
        if !self.is_chat_endpoint(&to.uri) {
            return Err(SipError::NotFound(format!("{} is not served here", to.uri)));
        }
        let local_tag = random_token();
        let dialog = Dialog::from_invite(request, local_tag.clone())
            .ok_or_else(|| SipError::Malformed("INVITE lacks a usable From or Contact".into()))?;
        let settings = &self.shared.settings;
        if dialog.held_bytes() > settings.max_dialog_header_bytes {
            return Err(SipError::Malformed(format!(
                "a chat dialog keeps at most {} bytes of Call-ID, From, To and Contact",
                settings.max_dialog_header_bytes
            )));
        }
        // A new Call-ID is a new dialog; the same one replaces the old (counted once).
        if !self.dialogs.contains_key(&dialog.call_id) {
            if self.dialogs.len() >= settings.max_dialogs_per_connection {
                return Err(SipError::Forbidden(format!(
                    "at most {} chat dialogs per connection",
                    settings.max_dialogs_per_connection
                )));
            }
            let user = self.registered_as().unwrap_or_default();
            if !self
                .shared
                .user_dialogs
                .acquire(user, settings.max_dialogs_per_user)
            {
                return Err(SipError::Forbidden(format!(
                    "at most {} chat dialogs per user",
                    settings.max_dialogs_per_user
                )));
            }
        }
        tracing::debug!(connection = self.info.id, call_id = %dialog.call_id, "chat dialog created");
        if let Some(old) = self.dialogs.insert(dialog.call_id.clone(), dialog) {
            self.endpoint_dialog_ended(&old);
        }
        Ok(self.invite_ok(request, &local_tag))
    }

    fn invite_ok(&self, request: &Message, local_tag: &str) -> Message {
        let mut reply = response(&request.headers, 200, Some(local_tag));
        let chat_user = self
            .shared
            .settings
            .chat_aor
            .split('@')
            .next()
            .unwrap_or("ocschat");
        reply.headers.push(
            "Contact",
            format!(
                "<sip:{chat_user}@{};transport={}>",
                self.info.local,
                uri_param(self.info.transport)
            ),
        );
        reply.headers.push("Allow", ALLOW);
        self.session_timer_headers(request, &mut reply);
        reply.headers.push("Content-Type", "application/sdp");
        let ip = self.info.local.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        reply.body = Bytes::from(format!(
            "v=0\r\no=- 0 0 IN {family} {ip}\r\ns=session\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=message {} sip null\r\na=accept-types:text/plain\r\n",
            self.info.local.port()
        ));
        reply
    }

    /// RFC 4028 as the protocol reference recommends: offer Session-Expires with the
    /// client as refresher and answer every UPDATE; perch itself never ends an idle dialog.
    fn session_timer_headers(&self, request: &Message, reply: &mut Message) {
        let ours = self.shared.settings.session_expires;
        let theirs = request
            .headers
            .get("Session-Expires")
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<u32>().ok());
        let interval = match (theirs, ours) {
            (Some(t), 0) => t,
            (Some(t), o) => t.min(o),
            (None, o) => o,
        };
        reply.headers.push("Supported", "timer");
        if interval > 0 {
            reply
                .headers
                .push("Session-Expires", format!("{interval};refresher=uac"));
            reply.headers.push("Require", "timer");
        }
    }

    fn update_ok(&self, request: &Message) -> Message {
        let mut reply = response(&request.headers, 200, None);
        self.session_timer_headers(request, &mut reply);
        reply
    }

    fn in_dialog(&mut self, request: &Message) -> Result<&mut Dialog, SipError> {
        let cseq = request.cseq().map(|c| c.number).unwrap_or(0);
        let dialog = self
            .dialogs
            .get_mut(request.call_id())
            .filter(|d| d.matches(request))
            .ok_or(SipError::NoSuchDialog)?;
        dialog.remote_cseq = dialog.remote_cseq.max(cseq);
        Ok(dialog)
    }

    fn ack(&mut self, request: &Message) {
        if let Ok(dialog) = self.in_dialog(request) {
            dialog.confirmed = true;
        }
    }

    fn bye(&mut self, request: &Message) -> Result<Message, SipError> {
        let call_id = self.in_dialog(request)?.call_id.clone();
        if let Some(dialog) = self.dialogs.remove(&call_id) {
            self.dialog_ended(&dialog);
        }
        Ok(response(&request.headers, 200, None))
    }

    fn info(
        &mut self,
        request: &Message,
        after: &mut Vec<(String, Bytes)>,
    ) -> Result<Handled, SipError> {
        let dialog = self.in_dialog(request)?;
        let call_id = dialog.call_id.clone();
        let endpoint_uri = dialog.local_uri.clone();
        let user = self.registered_as().unwrap_or_default().to_owned();
        if !request.body.is_empty() {
            let context = DialogContext {
                connection: self.info.id,
                call_id: &call_id,
                user: &user,
                endpoint_uri: &endpoint_uri,
            };
            match self.shared.endpoint.info(&context, &request.body)? {
                EndpointReply::Now(bodies) => {
                    after.extend(bodies.into_iter().map(|body| (call_id.clone(), body)));
                }
                EndpointReply::Later(work) => return Ok(Handled::Deferred(work)),
            }
        }
        Ok(Handled::Reply(response(&request.headers, 200, None)))
    }

    fn cancel(&mut self, request: &Message) -> Result<Message, SipError> {
        let cseq = request.cseq().map(|c| c.number).unwrap_or(0);
        // perch answers every INVITE at once, so a CANCEL can only find it completed:
        // 200 to the CANCEL and no effect on the INVITE (RFC 3261 §9.2).
        if self
            .server_transactions
            .answered_invite(request.call_id(), cseq)
        {
            Ok(response(&request.headers, 200, None))
        } else {
            Err(SipError::NoSuchDialog)
        }
    }

    fn subscribe(&self, request: &Message) -> Result<Message, SipError> {
        let event = request.headers.get("Event").unwrap_or_default();
        let package = event.split(';').next().unwrap_or_default().trim();
        if !package.eq_ignore_ascii_case(PROVISIONING_EVENT) {
            return Err(SipError::BadEvent(package.to_owned()));
        }
        // Piggy-backed provisioning (xccos-protocol.md §1.4 (a)): SIPE reads the body of the
        // 200 because of ms-piggyback-cseq and starts group chat from it.
        let mut reply = response(&request.headers, 200, Some(&random_token()));
        reply.headers.push("Event", PROVISIONING_EVENT);
        reply.headers.push("ms-piggyback-cseq", "1");
        reply.headers.push("Expires", "0");
        reply
            .headers
            .push("subscription-state", "terminated;expires=0");
        reply.headers.push("Content-Type", PROVISIONING_TYPE);
        let user = self.registered_as().unwrap_or_default();
        let enabled = crate::core::policy::chat_enabled(&self.shared.model.snapshot(), user);
        reply.body = Bytes::from(provisioning_document(
            &self.shared.settings.chat_aor,
            enabled,
            self.shared.settings.room_management_url.as_deref(),
        ));
        Ok(reply)
    }

    /// Sends a server-originated INFO carrying `body` on a chat dialog.
    pub fn send_info(&mut self, call_id: &str, body: Bytes, now: Instant) {
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        let request = dialog.request(
            &self.info,
            &mut self.security,
            Method::Info,
            Some("text/plain"),
            &body,
        );
        self.client_transactions.sent(
            ClientKey {
                call_id: call_id.to_owned(),
                cseq: dialog.local_cseq,
            },
            Method::Info,
            now,
        );
        self.outputs.push(Output::Send(request));
    }

    /// Ends a dialog from our side.
    fn send_bye(&mut self, call_id: &str, now: Instant) {
        let Some(mut dialog) = self.dialogs.remove(call_id) else {
            return;
        };
        let request = dialog.request(&self.info, &mut self.security, Method::Bye, None, &[]);
        self.client_transactions.forget_call(call_id);
        self.client_transactions.sent(
            ClientKey {
                call_id: call_id.to_owned(),
                cseq: dialog.local_cseq,
            },
            Method::Bye,
            now,
        );
        self.outputs.push(Output::Send(request));
        self.dialog_ended(&dialog);
    }

    fn handle_response(&mut self, message: &Message, code: u16) {
        let Ok(cseq) = message.cseq() else { return };
        let key = ClientKey {
            call_id: message.call_id().to_owned(),
            cseq: cseq.number,
        };
        let Some(outstanding) = self.client_transactions.response(&key, code) else {
            tracing::debug!(
                connection = self.info.id,
                code,
                "response matches no request of ours"
            );
            return;
        };
        // SIPE answers 487 to an INFO on a Call-ID it has given up, 481 to one it never knew:
        // either way that dialog is gone (xccos-protocol.md §1.7).
        if outstanding.method == Method::Info && matches!(code, 408 | 481 | 487) {
            tracing::info!(connection = self.info.id, call_id = %key.call_id, code, "client dropped the chat dialog");
            self.end_dialog(&key.call_id);
        }
    }

    /// Periodic housekeeping: registration expiry, transaction timeouts.
    /// When [`Session::tick`] next has something to do: a stored response to drop, a
    /// request of ours to give up on, the registration to end.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let timeout = self.shared.settings.transaction_timeout;
        [
            self.server_transactions.next_expiry(),
            self.client_transactions.next_timeout(timeout),
            self.registration.as_ref().map(|r| r.expires_at),
            self.security.association.as_ref().map(|a| a.expires_at),
            self.security
                .pending
                .as_ref()
                .map(|p| p.issued_at + super::sipae::CHALLENGE_LIFETIME),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn tick(&mut self, now: Instant) {
        self.server_transactions.expire(now);
        if self
            .security
            .pending
            .as_ref()
            .is_some_and(|p| p.issued_at + super::sipae::CHALLENGE_LIFETIME <= now)
        {
            self.security.pending = None;
        }
        if self
            .security
            .association
            .as_ref()
            .is_some_and(|a| a.expires_at <= now)
        {
            // Nothing the client sends can be verified any more: the registration ends and
            // the client signs in again (SIPE re-authenticates well before this).
            tracing::info!(connection = self.info.id, "security association expired");
            self.security.association = None;
            self.end_registration();
            self.outputs.push(Output::Close);
        }
        let timeout = self.shared.settings.transaction_timeout;
        for (key, outstanding) in self.client_transactions.timed_out(now, timeout) {
            tracing::info!(connection = self.info.id, call_id = %key.call_id, method = %outstanding.method, "request timed out");
            self.end_dialog(&key.call_id);
        }
        if self
            .registration
            .as_ref()
            .is_some_and(|r| r.expires_at <= now)
        {
            tracing::info!(connection = self.info.id, "registration expired");
            self.end_registration();
        }
    }

    /// The connection is gone: leave every dialog and drop the binding.
    pub fn closed(&mut self) {
        self.end_registration();
    }

    /// Ends every dialog (the chat endpoint is told), then the registration and its binding.
    fn end_registration(&mut self) {
        self.end_all_dialogs();
        self.unbind();
    }

    fn unbind(&mut self) {
        if let Some(registration) = self.registration.take() {
            self.shared
                .registrar
                .unbind(&registration.aor, self.info.id);
        }
    }

    fn end_dialog(&mut self, call_id: &str) {
        self.client_transactions.forget_call(call_id);
        if let Some(dialog) = self.dialogs.remove(call_id) {
            self.dialog_ended(&dialog);
        }
    }

    fn end_all_dialogs(&mut self) {
        let call_ids: Vec<String> = self.dialogs.keys().cloned().collect();
        for call_id in call_ids {
            self.end_dialog(&call_id);
        }
    }

    /// A dialog is gone: its slot is given back and the chat endpoint told.
    fn dialog_ended(&self, dialog: &Dialog) {
        let user = self.registered_as().unwrap_or_default();
        self.shared.user_dialogs.release(user);
        self.endpoint_dialog_ended(dialog);
    }

    /// A dialog's chat state ends (it is gone, or replaced under the same Call-ID).
    fn endpoint_dialog_ended(&self, dialog: &Dialog) {
        let user = self.registered_as().unwrap_or_default();
        self.shared.endpoint.dialog_ended(&DialogContext {
            connection: self.info.id,
            call_id: &dialog.call_id,
            user,
            endpoint_uri: &dialog.local_uri,
        });
    }

    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }
}

/// Extensions a client may require of perch (RFC 3261 §8.2.2.3).
const UNDERSTOOD_EXTENSIONS: &[&str] = &[
    "timer",
    "ms-benotify",
    "ms-sender",
    "ms-piggyback-first-notify",
];

/// Checks what every request must satisfy before its method is looked at: a sip/sips
/// Request-URI (416 otherwise) and only extensions perch understands in Require (420).
fn check_request_line(request: &Message) -> Result<(), SipError> {
    if let StartLine::Request { uri, method } = &request.start {
        let scheme = uri.split_once(':').map_or("", |(scheme, _)| scheme);
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return Err(SipError::UnsupportedUriScheme(uri.clone()));
        }
        // CANCEL and ACK must not be refused for their Require (RFC 3261 §8.2.2.3).
        if *method == Method::Cancel {
            return Ok(());
        }
    }
    let unknown: Vec<String> = request
        .headers
        .tokens("Require")
        .filter(|option| {
            !UNDERSTOOD_EXTENSIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(option))
        })
        .map(str::to_owned)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(SipError::BadExtension(unknown))
    }
}

/// The one mapping from [`SipError`] to a response: status from the error, the reason in a
/// Warning header (RFC 3261 §20.43).
fn error_response(request_headers: &crate::lync::sip::Headers, error: &SipError) -> Message {
    let mut reply = response(request_headers, error.status(), Some(&random_token()));
    match error {
        SipError::IntervalTooBrief { min_expires } => {
            reply.headers.push("Min-Expires", min_expires.to_string());
        }
        SipError::BadExtension(options) => reply.headers.push("Unsupported", options.join(",")),
        // Lync clients honour Retry-After on a 503 and try again.
        SipError::Overloaded => reply.headers.push("Retry-After", "1"),
        _ => {}
    }
    let text = error.to_string().replace(['"', '\\', '\r', '\n'], "'");
    reply
        .headers
        .push("Warning", format!("399 perch \"{text}\""));
    reply
}

/// The in-band provisioning document: whether chat is on for the user, the chat endpoint,
/// and the room page, as both the internal and the external address (MS-SIPREGE
/// 2.2.2.5.11: PersistentChatWebManagerUriInt/Ext).
fn provisioning_document(chat_aor: &str, enabled: bool, room_page: Option<&str>) -> String {
    let mut document = format!(
        concat!(
            "<provisionGroupList xmlns=\"http://schemas.microsoft.com/2006/09/sip/provisiongrouplist-notification\">",
            "<provisionGroup name=\"ServerConfiguration\"/>",
            "<provisionGroup name=\"persistentChatConfiguration\"><propertyEntryList>",
            "<property name=\"EnablePersistentChat\">{}</property>",
            "<property name=\"DefaultPersistentChatPoolUri\">sip:{}</property>",
        ),
        enabled, chat_aor
    );
    if let Some(url) = room_page {
        let url = quick_xml::escape::escape(url);
        for scope in ["Int", "Ext"] {
            document.push_str(&format!(
                "<property name=\"PersistentChatWebManagerUri{scope}\">{url}</property>"
            ));
        }
    }
    document.push_str("</propertyEntryList></provisionGroup></provisionGroupList>");
    document
}

#[cfg(test)]
mod tests {
    use super::provisioning_document;

    #[test]
    fn provisioning_names_the_room_page_when_there_is_one() {
        let without = provisioning_document("ocschat@example.test", true, None);
        assert!(
            !without.contains("PersistentChatWebManagerUri"),
            "{without}"
        );
        let with = provisioning_document(
            "ocschat@example.test",
            true,
            Some("https://chat.example.test:8443/manage/?a=1&b=2"),
        );
        for scope in ["Int", "Ext"] {
            let property = format!(
                "<property name=\"PersistentChatWebManagerUri{scope}\">https://chat.example.test:8443/manage/?a=1&amp;b=2</property>"
            );
            assert!(with.contains(&property), "{with}");
        }
        assert!(with.ends_with("</propertyEntryList></provisionGroup></provisionGroupList>"));
    }
}
