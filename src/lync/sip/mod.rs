//! SIP wire codec: stream framing, message parsing and serialization, header views.
//! Pure functions over bytes; no I/O and no session state.

pub mod framer;
pub mod header;
pub mod message;
pub mod request;
pub mod response;

pub use framer::{Frame, FrameError, FrameLimits};
pub use header::{NameAddr, Params, SipUri};
pub use message::{CSeq, Header, Headers, Message, Method, ParseError, StartLine};
