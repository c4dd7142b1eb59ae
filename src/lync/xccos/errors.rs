//! The Lync gateway's one mapping from chat-core failures to replies: an XCCOS `resp`
//! code for a command, a SIP status for a post (whose INFO itself is refused, which SIPE
//! shows as "not delivered").

use crate::core::hub::ChatError;
use crate::core::policy::Denial;
use crate::core::ports::StoreError;
use crate::lync::session::SipError;

use super::envelope::ResultCode;

pub fn result_code(error: &ChatError) -> ResultCode {
    match error {
        ChatError::Denied(Denial::NotFound) => ResultCode::NotFound,
        ChatError::Denied(_) | ChatError::QuotaExceeded(_) => ResultCode::Forbidden,
        ChatError::Invalid(_) | ChatError::TooLarge { .. } => ResultCode::BadRequest,
        ChatError::Store(_) => ResultCode::ServerError,
    }
}

pub fn info_error(error: ChatError) -> SipError {
    match error {
        ChatError::Denied(Denial::NotFound) => SipError::NotFound(error.to_string()),
        ChatError::Denied(_) | ChatError::QuotaExceeded(_) => {
            SipError::Forbidden(error.to_string())
        }
        ChatError::Invalid(_) => SipError::Malformed(error.to_string()),
        ChatError::TooLarge { .. } => SipError::BodyTooLarge(error.to_string()),
        ChatError::Store(StoreError::Overloaded) => SipError::Overloaded,
        // Not 503: its Retry-After would have clients resend at once into a disk that
        // stays full until an operator frees space. A 500 whose Warning says why tells
        // the user the post was not delivered and that it is not their post's fault.
        ChatError::Store(StoreError::Full) => SipError::Internal(StoreError::Full.to_string()),
        ChatError::Store(e) => SipError::Internal(format!("store: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_one_answer() {
        let cases = [
            (
                ChatError::Denied(Denial::NotFound),
                ResultCode::NotFound,
                404,
            ),
            (
                ChatError::Denied(Denial::NotEnabled),
                ResultCode::Forbidden,
                403,
            ),
            (ChatError::Invalid("x".into()), ResultCode::BadRequest, 400),
            (
                ChatError::QuotaExceeded("x".into()),
                ResultCode::Forbidden,
                403,
            ),
            (
                ChatError::TooLarge { size: 2, limit: 1 },
                ResultCode::BadRequest,
                413,
            ),
            (
                ChatError::Store(StoreError::Overloaded),
                ResultCode::ServerError,
                503,
            ),
            (
                ChatError::Store(StoreError::Closed),
                ResultCode::ServerError,
                500,
            ),
            (
                ChatError::Store(StoreError::Full),
                ResultCode::ServerError,
                500,
            ),
        ];
        for (error, code, status) in cases {
            assert_eq!(result_code(&error), code, "{error}");
            assert_eq!(info_error(error).status(), status);
        }
    }

    /// The refusal of a post on a full disk says so in words, not only as a bare 500.
    #[test]
    fn a_full_disk_is_named_in_the_refusal() {
        let refusal = info_error(ChatError::Store(StoreError::Full));
        assert!(refusal.to_string().contains("disk is full"), "{refusal}");
    }
}
