//! The one mapping from the core's errors to XMPP stanza errors (RFC 6120 §8.3.3,
//! XEP-0045 §7.2 for joins). A room the user may not know of is `item-not-found`, exactly
//! like one that does not exist.

use crate::core::hub::ChatError;
use crate::core::manage::ManageError;
use crate::core::policy::Denial;
use crate::core::ports::StoreError;
use crate::core::service::ServiceError;
use crate::xmpp::stanza::{ErrorType, StanzaError};

pub fn stanza_error(error: &ChatError) -> StanzaError {
    let (kind, condition) = match error {
        ChatError::Denied(denial) => return denied(*denial),
        ChatError::Store(store) => return store_error(store),
        ChatError::Invalid(_) => (ErrorType::Modify, "bad-request"),
        ChatError::TooLarge { .. } => (ErrorType::Modify, "policy-violation"),
        ChatError::QuotaExceeded(_) => (ErrorType::Wait, "resource-constraint"),
    };
    StanzaError::new(kind, condition).with_text(error.to_string())
}

/// An administrative change refused by the core's rules (muc#admin).
pub fn admin_error(error: &ServiceError) -> StanzaError {
    let condition = match error {
        ServiceError::Denied(denial) => return denied(*denial),
        ServiceError::Store(store) => return store_error(store),
        ServiceError::Manage(ManageError::NotFound(_)) => (ErrorType::Cancel, "item-not-found"),
        ServiceError::Manage(ManageError::Duplicate(_)) => (ErrorType::Cancel, "conflict"),
        ServiceError::Invalid(_) | ServiceError::Manage(_) => (ErrorType::Modify, "not-acceptable"),
    };
    StanzaError::new(condition.0, condition.1).with_text(error.to_string())
}

fn denied(denial: Denial) -> StanzaError {
    let (kind, condition) = match denial {
        Denial::NotFound => (ErrorType::Cancel, "item-not-found"),
        Denial::NotMember => (ErrorType::Auth, "registration-required"),
        Denial::Disabled => (ErrorType::Cancel, "not-allowed"),
        Denial::NotEnabled | Denial::NotPresenter | Denial::NotManager | Denial::NotCreator => {
            (ErrorType::Auth, "forbidden")
        }
    };
    StanzaError::new(kind, condition).with_text(denial.reason())
}

fn store_error(error: &StoreError) -> StanzaError {
    match error {
        StoreError::Overloaded | StoreError::Full | StoreError::TimedOut { .. } => {
            StanzaError::new(ErrorType::Wait, "resource-constraint").with_text(error.to_string())
        }
        // The store's own words are for the log, not for clients.
        _ => StanzaError::new(ErrorType::Cancel, "internal-server-error"),
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
        let admin = admin_error(&ServiceError::Denied(Denial::NotManager));
        assert_eq!(
            (admin.kind, admin.condition),
            (ErrorType::Auth, "forbidden")
        );
    }
}
