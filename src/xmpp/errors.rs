//! The one mapping from the core's errors to XMPP stanza errors (RFC 6120 §8.3.3,
//! XEP-0045 §7.2 for joins). A room the user may not know of is `item-not-found`, exactly
//! like one that does not exist.

use crate::core::hub::ChatError;
use crate::core::policy::Denial;
use crate::core::ports::StoreError;
use crate::xmpp::stanza::{ErrorType, StanzaError};

pub fn stanza_error(error: &ChatError) -> StanzaError {
    let (kind, condition) = match error {
        ChatError::Denied(denial) => match denial {
            Denial::NotFound => (ErrorType::Cancel, "item-not-found"),
            Denial::NotMember => (ErrorType::Auth, "registration-required"),
            Denial::Disabled => (ErrorType::Cancel, "not-allowed"),
            Denial::NotEnabled | Denial::NotPresenter | Denial::NotManager | Denial::NotCreator => {
                (ErrorType::Auth, "forbidden")
            }
        },
        ChatError::Invalid(_) => (ErrorType::Modify, "bad-request"),
        ChatError::TooLarge { .. } => (ErrorType::Modify, "policy-violation"),
        ChatError::QuotaExceeded(_) => (ErrorType::Wait, "resource-constraint"),
        ChatError::Store(
            StoreError::Overloaded | StoreError::Full | StoreError::TimedOut { .. },
        ) => (ErrorType::Wait, "resource-constraint"),
        ChatError::Store(_) => (ErrorType::Cancel, "internal-server-error"),
    };
    let refusal = StanzaError::new(kind, condition);
    match error {
        // The store's own words are for the log, not for clients.
        ChatError::Store(_) => refusal,
        other => refusal.with_text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_rooms_and_missing_rooms_are_refused_alike() {
        let hidden = stanza_error(&ChatError::Denied(Denial::NotFound));
        assert_eq!(
            (hidden.kind, hidden.condition),
            (ErrorType::Cancel, "item-not-found")
        );
        let closed = stanza_error(&ChatError::Denied(Denial::NotMember));
        assert_eq!(closed.condition, "registration-required");
        let store = stanza_error(&ChatError::Store(StoreError::Backend("disk".into())));
        assert_eq!(
            (store.condition, store.text),
            ("internal-server-error", None)
        );
    }
}
