//! One file per XCCOS command. Each takes the command and the caller's context and returns
//! the reply element.

pub mod requri;
