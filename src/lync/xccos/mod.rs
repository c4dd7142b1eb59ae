//! XCCOS, the XML group-chat protocol carried in SIP INFO (MS-XCCOSIP): envelope parsing,
//! reply building, and one file per command under [`commands`].

pub mod commands;
pub mod endpoint;
pub mod envelope;
pub mod errors;
pub mod uri;
pub mod xml;

pub use endpoint::XccosEndpoint;
