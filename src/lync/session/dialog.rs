//! Chat dialogs (INVITE-created, RFC 3261 §12) and the requests perch sends in them.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::lync::sip::request::RequestHead;
use crate::lync::sip::{Message, Method, NameAddr};

use super::sipae::{Security, SignedParts};
use super::{ConnectionInfo, random_token, via_token};

/// How many chat dialogs each user holds, across connections, against a cap.
#[derive(Debug, Default)]
pub struct UserDialogs(Mutex<HashMap<String, usize>>);

impl UserDialogs {
    /// Counts one more dialog for `user` unless they already hold `cap`.
    pub fn acquire(&self, user: &str, cap: usize) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(user.to_owned()).or_insert(0);
        if *count >= cap {
            if *count == 0 {
                counts.remove(user);
            }
            return false;
        }
        *count += 1;
        true
    }

    pub fn release(&self, user: &str) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(user);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    /// The URI the client INVITEd; SIPE finds the session of a server INFO by this From URI.
    pub local_uri: String,
    /// The client's From header exactly as sent (tag and epid included), our To.
    pub remote_from: String,
    pub remote_tag: Option<String>,
    /// Where in-dialog requests go: the client's Contact, else its From URI.
    pub remote_target: String,
    pub local_cseq: u32,
    pub remote_cseq: u32,
    pub confirmed: bool,
}

impl Dialog {
    /// A dialog from an INVITE that the caller has already checked.
    pub fn from_invite(invite: &Message, local_tag: String) -> Option<Self> {
        let from_value = invite.headers.get("From")?;
        let from = NameAddr::parse(from_value)?;
        let to = NameAddr::parse(invite.headers.get("To")?)?;
        let remote_target = invite
            .headers
            .get("Contact")
            .and_then(NameAddr::parse)
            .map_or_else(|| from.uri.clone(), |c| c.uri);
        Some(Self {
            call_id: invite.call_id().to_owned(),
            local_tag,
            local_uri: to.uri,
            remote_from: from_value.to_owned(),
            remote_tag: from.tag().map(str::to_owned),
            remote_target,
            local_cseq: 0,
            remote_cseq: invite.cseq().map_or(0, |c| c.number),
            confirmed: false,
        })
    }

    /// Header bytes this dialog keeps for its lifetime.
    pub fn held_bytes(&self) -> usize {
        self.call_id.len()
            + self.local_uri.len()
            + self.remote_from.len()
            + self.remote_target.len()
    }

    /// Whether an in-dialog request's tags match this dialog.
    pub fn matches(&self, request: &Message) -> bool {
        let tag_of = |name| {
            request
                .headers
                .get(name)
                .and_then(NameAddr::parse)
                .and_then(|n| n.tag().map(str::to_owned))
        };
        tag_of("From") == self.remote_tag && tag_of("To").is_none_or(|tag| tag == self.local_tag)
    }

    /// The next request perch sends in this dialog, encoded, and signed when the connection
    /// has a security association.
    pub fn request(
        &mut self,
        connection: &ConnectionInfo,
        security: &mut Security,
        method: Method,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Bytes {
        self.local_cseq += 1;
        let via = format!(
            "SIP/2.0/{} {};branch=z9hG4bK{}",
            via_token(connection.transport),
            connection.local,
            random_token()
        );
        let from = format!("<{}>;tag={}", self.local_uri, self.local_tag);
        let head = RequestHead {
            method: method.as_str(),
            uri: &self.remote_target,
            via: &via,
            from: &from,
            to: &self.remote_from,
            call_id: &self.call_id,
            cseq: self.local_cseq,
        };
        let signature = security.association.as_mut().map(|association| {
            let cseq = self.local_cseq.to_string();
            association.sign(&SignedParts {
                call_id: &self.call_id,
                cseq: &cseq,
                method: method.as_str(),
                from: &from,
                to: &self.remote_from,
                asserted_identity: None,
                expires: None,
                code: None,
            })
        });
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2);
        if let Some(content_type) = content_type {
            headers.push(("Content-Type", content_type));
        }
        if let Some((name, value)) = &signature {
            headers.push((name, value));
        }
        head.encode(&headers, body)
    }
}
