//! Request failures, grouped by who is at fault, and their one mapping to SIP responses.

/// Why a request was not carried out. Each variant maps to exactly one status code in
/// [`SipError::status`]; the text travels in a `Warning` header, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    // The sender's fault: malformed or oversized input.
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    BodyTooLarge(String),
    #[error("{0}")]
    MessageTooLarge(String),
    #[error("registration interval too brief")]
    IntervalTooBrief { min_expires: u32 },
    #[error("only SIP/2.0 is spoken here")]
    VersionNotSupported,
    // Something perch does not do.
    #[error("method {0} is not implemented")]
    NotImplemented(String),
    #[error("event package {0:?} is not supported")]
    BadEvent(String),
    #[error("URI scheme of {0:?} is not supported")]
    UnsupportedUriScheme(String),
    #[error("required extensions not supported: {}", .0.join(", "))]
    BadExtension(Vec<String>),
    #[error("{0}")]
    NotFound(String),
    // The sender may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("no such dialog or transaction")]
    NoSuchDialog,
    // perch's own fault, or its load.
    #[error("{0}")]
    Internal(String),
    #[error("too many requests; retry later")]
    Overloaded,
}

impl SipError {
    pub fn status(&self) -> u16 {
        match self {
            SipError::Malformed(_) => 400,
            SipError::BodyTooLarge(_) => 413,
            SipError::MessageTooLarge(_) => 513,
            SipError::IntervalTooBrief { .. } => 423,
            SipError::VersionNotSupported => 505,
            SipError::UnsupportedUriScheme(_) => 416,
            SipError::BadExtension(_) => 420,
            SipError::NotImplemented(_) => 501,
            SipError::BadEvent(_) => 489,
            SipError::NotFound(_) => 404,
            SipError::Forbidden(_) => 403,
            SipError::NoSuchDialog => 481,
            SipError::Internal(_) => 500,
            SipError::Overloaded => 503,
        }
    }
}

impl From<crate::lync::sip::ParseError> for SipError {
    fn from(error: crate::lync::sip::ParseError) -> Self {
        match error {
            crate::lync::sip::ParseError::BadVersion => SipError::VersionNotSupported,
            other => SipError::Malformed(other.to_string()),
        }
    }
}

impl From<&crate::lync::sip::FrameError> for SipError {
    fn from(error: &crate::lync::sip::FrameError) -> Self {
        use crate::lync::sip::FrameError;
        match error {
            FrameError::BodyTooLarge { .. } => SipError::BodyTooLarge(error.to_string()),
            FrameError::HeaderBlockTooLarge { .. } | FrameError::TooManyHeaders { .. } => {
                SipError::MessageTooLarge(error.to_string())
            }
            FrameError::BadContentLength { .. } => SipError::Malformed(error.to_string()),
        }
    }
}
