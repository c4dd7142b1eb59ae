//! The XCCOS chat endpoint: decodes INFO bodies on chat dialogs and dispatches commands.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::session::{ChatEndpoint, DialogContext, SipError};

use super::commands;
use super::envelope::{Incoming, ResultCode, envelope, parse_incoming, reply};
use super::xml::{Element, XmlLimits};

pub struct XccosEndpoint {
    chat_uri: String,
    limits: XmlLimits,
    /// Our envelope counter; each side numbers its own envelopes.
    next_envid: AtomicU64,
}

impl XccosEndpoint {
    pub fn new(chat_aor: &str) -> Self {
        Self {
            chat_uri: format!("sip:{chat_aor}"),
            limits: XmlLimits::default(),
            next_envid: AtomicU64::new(1),
        }
    }

    fn wrap(&self, child: Element) -> Bytes {
        envelope(self.next_envid.fetch_add(1, Ordering::Relaxed), child)
    }
}

impl ChatEndpoint for XccosEndpoint {
    fn info(&self, dialog: &DialogContext<'_>, body: &[u8]) -> Result<Vec<Bytes>, SipError> {
        let incoming = parse_incoming(body, &self.limits)
            .map_err(|e| SipError::Malformed(format!("XCCOS: {e}")))?;
        match incoming {
            Incoming::Command(command) => {
                let answer = match command.name.as_str() {
                    "requri" => commands::requri::handle(&command, &self.chat_uri),
                    _ => reply(&command, ResultCode::NotImplemented, Element::new("data")),
                };
                Ok(vec![self.wrap(answer)])
            }
            Incoming::Post(_) | Incoming::Other(_) => {
                tracing::debug!(user = dialog.user, "XCCOS element ignored");
                Ok(Vec::new())
            }
        }
    }

    fn dialog_ended(&self, dialog: &DialogContext<'_>) {
        tracing::debug!(
            user = dialog.user,
            call_id = dialog.call_id,
            "chat dialog ended"
        );
    }
}
