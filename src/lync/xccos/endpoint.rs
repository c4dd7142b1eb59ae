//! The XCCOS chat endpoint: decodes INFO bodies on chat dialogs and turns them into hub
//! operations; as the Lync gateway's [`EventSink`] it renders the hub's events as XCCOS,
//! once per event, and queues the same bytes for every recipient dialog.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::core::hub::{ChatCore, Event, EventSink};
use crate::core::ids::{Gateway, SessionRef};
use crate::core::policy::Denial;
use crate::lync::session::{
    ChatEndpoint, DialogContext, EndpointReply, Outbound, Outboxes, SipError,
};

use super::commands::{self, Context, Reply, grpchat, join, part};
use super::envelope::{Incoming, ResultCode, envelope, parse_incoming, reply};
use super::errors::info_error;
use super::xml::{Element, XmlLimits};

/// What the endpoint needs to serialise and deliver; shared with deferred work and
/// attached to the hub as the Lync gateway's sink.
struct Delivery {
    outboxes: Arc<Outboxes>,
    domain: String,
    /// Our envelope counter; each side numbers its own envelopes.
    next_envid: AtomicU64,
}

impl Delivery {
    fn wrap(&self, child: Element) -> Bytes {
        envelope(self.next_envid.fetch_add(1, Ordering::Relaxed), child)
    }
}

impl EventSink for Delivery {
    /// Serialises each rendering once and hands the same bytes to every recipient dialog.
    fn deliver(&self, event: &Event, to: &[SessionRef]) {
        match event {
            Event::Posted { room, message } => self.send(
                grpchat::message_element("grpchat", &self.domain, &room.uid, message),
                to,
            ),
            Event::Joined { room, user, roles } => {
                self.notify(join::join_notice(&self.domain, &room.uid, user, *roles), to);
            }
            Event::Left { room, user } => {
                self.notify(part::part_notice(&self.domain, &room.uid, user), to);
            }
            // The session taken out gets what makes SIPE leave the room; the others a
            // roster update.
            Event::Evicted {
                room,
                user,
                session,
            } => {
                let others: Vec<SessionRef> =
                    to.iter().filter(|s| *s != session).cloned().collect();
                self.notify(part::part_notice(&self.domain, &room.uid, user), &others);
                if to.contains(session) {
                    let removed = part::removed_from_room(&self.domain, &room.uid);
                    self.send(removed, std::slice::from_ref(session));
                }
            }
            // No invitation notice of XCCOS is known (xccos-protocol.md §2.5.9): Lync
            // clients ask with cmd:getinv, so no Lync session registers for these.
            Event::Invited { .. } => {}
        }
    }
}

impl Delivery {
    /// Serialises `element` once and queues it for every session in `to`.
    fn send(&self, element: Element, to: &[SessionRef]) {
        if let Some(deliveries) = self.deliveries(element, to) {
            self.outboxes.deliver_all(deliveries);
        }
    }

    /// Like [`Delivery::send`] for presence notices, which give way to posts when a
    /// reader's queue fills (a burst of sign-ins must not cut off who keeps up with posts).
    fn notify(&self, element: Element, to: &[SessionRef]) {
        if let Some(deliveries) = self.deliveries(element, to) {
            self.outboxes.deliver_droppable_all(deliveries);
        }
    }

    fn deliveries<'a>(
        &self,
        element: Element,
        to: &'a [SessionRef],
    ) -> Option<impl Iterator<Item = (u64, Outbound)> + 'a> {
        if to.is_empty() {
            return None;
        }
        let body = self.wrap(element);
        Some(to.iter().map(move |session| {
            let info = Outbound::Info {
                call_id: session.stream.clone(),
                body: body.clone(),
            };
            (session.connection, info)
        }))
    }
}

pub struct XccosEndpoint {
    core: Arc<ChatCore>,
    domain: String,
    chat_uri: String,
    max_bjoin: usize,
    limits: XmlLimits,
    delivery: Arc<Delivery>,
}

/// What the endpoint takes from the configuration.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    pub domain: String,
    /// The chat service's URI, `sip:ocschat@<domain>`.
    pub chat_uri: String,
    pub max_bjoin: usize,
    pub limits: XmlLimits,
}

impl XccosEndpoint {
    /// Creates the endpoint and attaches it to the hub as the Lync gateway.
    pub fn new(core: Arc<ChatCore>, outboxes: Arc<Outboxes>, settings: EndpointSettings) -> Self {
        let delivery = Arc::new(Delivery {
            outboxes,
            domain: settings.domain.clone(),
            next_envid: AtomicU64::new(1),
        });
        core.attach(Gateway::Lync, delivery.clone());
        Self {
            core,
            domain: settings.domain,
            chat_uri: settings.chat_uri,
            max_bjoin: settings.max_bjoin,
            limits: settings.limits,
            delivery,
        }
    }

    /// A post: accepted by the hub now (so one connection's posts are written in order
    /// and share commits), acknowledged once the hub says it is durable and delivered.
    fn post(&self, ctx: &Context<'_>, post: Element) -> Result<EndpointReply, SipError> {
        let accepted = grpchat::accept(ctx, post).map_err(info_error)?;
        Ok(EndpointReply::Later(Box::pin(async move {
            accepted.completed().await.map_err(info_error)?;
            Ok(Vec::new())
        })))
    }
}

fn session_ref(dialog: &DialogContext<'_>) -> SessionRef {
    SessionRef {
        gateway: Gateway::Lync,
        connection: dialog.connection,
        stream: Arc::from(dialog.call_id),
    }
}

impl ChatEndpoint for XccosEndpoint {
    fn info(&self, dialog: &DialogContext<'_>, body: &[u8]) -> Result<EndpointReply, SipError> {
        let incoming = parse_incoming(body, &self.limits)
            .map_err(|e| SipError::Malformed(format!("XCCOS: {e}")))?;
        let session = session_ref(dialog);
        let ctx = Context {
            core: &self.core,
            user: dialog.user,
            session: &session,
            domain: &self.domain,
            chat_uri: &self.chat_uri,
            max_bjoin: self.max_bjoin,
        };
        if !self.core.enabled(dialog.user) {
            // As Lync does: refuse the first command, then end the chat dialog.
            self.delivery.outboxes.deliver(
                dialog.connection,
                Outbound::Bye {
                    call_id: session.stream.clone(),
                },
            );
            return match incoming {
                Incoming::Command(command) => {
                    let refusal = reply(&command, ResultCode::Forbidden, Element::new("data"));
                    Ok(EndpointReply::Now(vec![self.delivery.wrap(refusal)]))
                }
                _ => Err(SipError::Forbidden(Denial::NotEnabled.reason().into())),
            };
        }
        match incoming {
            Incoming::Command(command) => match commands::dispatch(&ctx, &command) {
                Reply::Now(element) => Ok(EndpointReply::Now(vec![self.delivery.wrap(element)])),
                Reply::Later(work) => {
                    let delivery = self.delivery.clone();
                    Ok(EndpointReply::Later(Box::pin(async move {
                        Ok(vec![delivery.wrap(work.await)])
                    })))
                }
            },
            Incoming::Post(post) => self.post(&ctx, post),
            Incoming::Other(name) => {
                tracing::debug!(user = dialog.user, element = %name, "XCCOS element ignored");
                Ok(EndpointReply::Now(Vec::new()))
            }
        }
    }

    fn dialog_ended(&self, dialog: &DialogContext<'_>) {
        self.core.leave_all(dialog.user, &session_ref(dialog));
    }
}
