//! The XCCOS chat endpoint: decodes INFO bodies on chat dialogs, dispatches commands and
//! posts to the chat core, and delivers notices and posts to the other sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::core::chat::{ChatCore, ChatError, Eviction, SessionKey};
use crate::core::policy::Denial;
use crate::session::{ChatEndpoint, DialogContext, EndpointReply, Outbound, Outboxes, SipError};

use super::commands::{self, Context, Notice, Reply};
use super::envelope::{Command, Incoming, ResultCode, envelope, parse_incoming, reply};
use super::xml::{Element, XmlLimits};

/// What the endpoint needs to serialise and deliver; shared with deferred work.
struct Delivery {
    outboxes: Arc<Outboxes>,
    /// Store reads in progress at once; more wait their turn, so a burst of history
    /// searches cannot take every core (and a thread each) from the other commands.
    store_reads: Arc<Semaphore>,
    /// Our envelope counter; each side numbers its own envelopes.
    next_envid: AtomicU64,
}

impl Delivery {
    fn wrap(&self, child: Element) -> Bytes {
        envelope(self.next_envid.fetch_add(1, Ordering::Relaxed), child)
    }

    /// Serialises once and hands the same bytes to every recipient.
    fn broadcast(&self, to: &[SessionKey], child: Element) {
        if to.is_empty() {
            return;
        }
        let body = self.wrap(child);
        self.outboxes.deliver_all(to.iter().map(|session| {
            let info = Outbound::Info {
                call_id: session.call_id.clone(),
                body: body.clone(),
            };
            (session.connection, info)
        }));
    }

    fn send_notices(&self, notices: Vec<Notice>) {
        for notice in notices {
            self.broadcast(&notice.to, notice.element);
        }
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

impl XccosEndpoint {
    pub fn new(
        core: Arc<ChatCore>,
        outboxes: Arc<Outboxes>,
        config: &crate::config::Config,
    ) -> Self {
        Self {
            core,
            domain: config.domain.clone(),
            chat_uri: format!("sip:{}", config.chat_aor()),
            max_bjoin: config.limits.max_rooms_per_bjoin,
            limits: XmlLimits {
                max_depth: config.limits.xml_max_depth,
                max_elements: config.limits.xml_max_elements,
                max_attributes: config.limits.xml_max_attributes,
                max_value_bytes: config.limits.xml_max_value_bytes,
            },
            delivery: Arc::new(Delivery {
                outboxes,
                store_reads: Arc::new(Semaphore::new(concurrent_store_reads())),
                next_envid: AtomicU64::new(1),
            }),
        }
    }

    /// Tells evicted sessions (and the rooms they were in) that they left.
    pub fn announce_evictions(&self, evictions: Vec<Eviction>) {
        for eviction in evictions {
            tracing::info!(user = %eviction.left.user, room = %eviction.left.room.name, "removed from a room after an administrative change");
            let notice = commands::part::part_notice(&self.domain, &eviction.left);
            self.delivery.send_notices(vec![notice]);
        }
    }

    /// Runs a command that reads the store on a blocking thread, so a history search never
    /// holds up the connections sharing this runtime thread.
    fn on_blocking_thread(
        &self,
        dialog: &DialogContext<'_>,
        session: SessionKey,
        command: Command,
    ) -> EndpointReply {
        let core = self.core.clone();
        let delivery = self.delivery.clone();
        let (user, domain, chat_uri) = (
            dialog.user.to_owned(),
            self.domain.clone(),
            self.chat_uri.clone(),
        );
        let max_bjoin = self.max_bjoin;
        EndpointReply::Later(Box::pin(async move {
            let permit = delivery
                .store_reads
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| SipError::Internal(format!("store reads closed: {e}")))?;
            let outcome = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let ctx = Context {
                    core: &core,
                    user: &user,
                    session: &session,
                    domain: &domain,
                    chat_uri: &chat_uri,
                    max_bjoin,
                };
                commands::dispatch(&ctx, &command)
            })
            .await
            .map_err(|e| SipError::Internal(format!("command task failed: {e}")))?;
            delivery.send_notices(outcome.notices);
            let element = match outcome.reply {
                Reply::Now(element) => element,
                Reply::Later(work) => work.await,
            };
            Ok(vec![delivery.wrap(element)])
        }))
    }

    /// A post: accepted by the core now, acknowledged and delivered once durable.
    fn post(&self, ctx: &Context<'_>, post: Element) -> Result<EndpointReply, SipError> {
        let accepted = commands::grpchat::accept(ctx, post).map_err(post_error)?;
        let core = self.core.clone();
        let delivery = self.delivery.clone();
        let domain = self.domain.clone();
        Ok(EndpointReply::Later(Box::pin(async move {
            let message = match accepted.persisted {
                Some(pending) => {
                    let stored = crate::store::committed(pending)
                        .await
                        .map_err(|e| post_error(ChatError::Store(e)))?;
                    let stored = Arc::new(stored);
                    core.remember(stored.clone());
                    stored
                }
                // History off: delivered live, never stored, so it has no id.
                None => Arc::new(crate::store::StoredMessage {
                    id: 0,
                    room_id: accepted.room.id,
                    author: accepted.author,
                    ts: accepted.ts,
                    body: accepted.body,
                    extra: accepted.extra,
                }),
            };
            let element = commands::grpchat::message_element(
                "grpchat",
                &domain,
                &accepted.room.uid,
                &message,
            );
            delivery.broadcast(&core.recipients(accepted.room.id), element);
            Ok(Vec::new())
        })))
    }
}

/// Twice the cores: enough to keep them busy while some reads wait on the disk.
fn concurrent_store_reads() -> usize {
    std::thread::available_parallelism().map_or(4, |n| 2 * n.get())
}

/// How a refused post answers the INFO itself (SIPE shows "not delivered").
fn post_error(error: ChatError) -> SipError {
    match error {
        ChatError::Denied(Denial::NotFound) => SipError::NotFound(error.to_string()),
        ChatError::Denied(_) => SipError::Forbidden(error.to_string()),
        ChatError::Invalid(_) => SipError::Malformed(error.to_string()),
        ChatError::TooLarge { .. } => SipError::BodyTooLarge(error.to_string()),
        ChatError::Store(e) => SipError::Internal(format!("store: {e}")),
    }
}

impl ChatEndpoint for XccosEndpoint {
    fn info(&self, dialog: &DialogContext<'_>, body: &[u8]) -> Result<EndpointReply, SipError> {
        let incoming = parse_incoming(body, &self.limits)
            .map_err(|e| SipError::Malformed(format!("XCCOS: {e}")))?;
        let session = SessionKey {
            connection: dialog.connection,
            call_id: Arc::from(dialog.call_id),
        };
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
                    call_id: Arc::from(dialog.call_id),
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
            Incoming::Command(command) if commands::reads_store(&command) => {
                Ok(self.on_blocking_thread(dialog, session, command))
            }
            Incoming::Command(command) => {
                let outcome = commands::dispatch(&ctx, &command);
                self.delivery.send_notices(outcome.notices);
                match outcome.reply {
                    Reply::Now(element) => {
                        Ok(EndpointReply::Now(vec![self.delivery.wrap(element)]))
                    }
                    Reply::Later(work) => {
                        let delivery = self.delivery.clone();
                        Ok(EndpointReply::Later(Box::pin(async move {
                            Ok(vec![delivery.wrap(work.await)])
                        })))
                    }
                }
            }
            Incoming::Post(post) => self.post(&ctx, post),
            Incoming::Other(name) => {
                tracing::debug!(user = dialog.user, element = %name, "XCCOS element ignored");
                Ok(EndpointReply::Now(Vec::new()))
            }
        }
    }

    fn dialog_ended(&self, dialog: &DialogContext<'_>) {
        let session = SessionKey {
            connection: dialog.connection,
            call_id: Arc::from(dialog.call_id),
        };
        let notices = self
            .core
            .leave_all(dialog.user, &session)
            .iter()
            .map(|left| commands::part::part_notice(&self.domain, left))
            .collect();
        self.delivery.send_notices(notices);
    }
}
