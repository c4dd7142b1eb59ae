//! The `<xccos>` envelope: what a client sent, and the replies perch sends back.

use bytes::Bytes;

use super::xml::{Element, XmlError, XmlLimits, parse};

pub const NAMESPACE: &str = "urn:parlano:xml:ns:xccos";

/// A command as received: `<cmd id="cmd:NAME" seqid="N"><data>…</data></cmd>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name without the `cmd:` prefix.
    pub name: String,
    pub seqid: String,
    /// The client's envelope id, echoed in `commandid`.
    pub envid: String,
    pub data: Element,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Command(Command),
    /// A `grpchat` post.
    Post(Element),
    /// Something a client has no reason to send (rpl, ntc) or an element we do not know.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("root element is <{0}>, not <xccos>")]
    NotXccos(String),
    #[error("the envelope is empty")]
    Empty,
    #[error("command without an id")]
    MissingCommandId,
}

pub fn parse_incoming(body: &[u8], limits: &XmlLimits) -> Result<Incoming, EnvelopeError> {
    let root = parse(body, limits)?;
    if root.name != "xccos" {
        return Err(EnvelopeError::NotXccos(root.name));
    }
    let envid = root.attr("envid").unwrap_or_default().to_owned();
    let mut root = root;
    if root.children.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    let first = root.children.swap_remove(0);
    match first.name.as_str() {
        "cmd" => {
            let name = first
                .attr("id")
                .and_then(|id| id.strip_prefix("cmd:"))
                .ok_or(EnvelopeError::MissingCommandId)?
                .to_owned();
            let seqid = first.attr("seqid").unwrap_or("1").to_owned();
            let data = first
                .children
                .into_iter()
                .find(|c| c.name == "data")
                .unwrap_or_else(|| Element::new("data"));
            Ok(Incoming::Command(Command {
                name,
                seqid,
                envid,
                data,
            }))
        }
        "grpchat" => Ok(Incoming::Post(first)),
        other => Ok(Incoming::Other(other.to_owned())),
    }
}

/// Outcome codes of `resp`, with the upper-case token SIPE shows to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Ok,
    BadRequest,
    Forbidden,
    NotFound,
    NotImplemented,
    ServerError,
}

impl ResultCode {
    pub fn code(self) -> u16 {
        match self {
            ResultCode::Ok => 200,
            ResultCode::BadRequest => 400,
            ResultCode::Forbidden => 403,
            ResultCode::NotFound => 404,
            ResultCode::NotImplemented => 501,
            ResultCode::ServerError => 500,
        }
    }

    pub fn token(self) -> &'static str {
        match self {
            ResultCode::Ok => "SUCCESS_OK",
            ResultCode::BadRequest => "BAD_REQUEST",
            ResultCode::Forbidden => "ACCESS_DENIED",
            ResultCode::NotFound => "NOT_FOUND",
            ResultCode::NotImplemented => "NOT_IMPLEMENTED",
            ResultCode::ServerError => "SERVER_ERROR",
        }
    }
}

/// Wraps one child in an envelope numbered `envid`.
pub fn envelope(envid: u64, child: Element) -> Bytes {
    let root = Element::new("xccos")
        .with_attr("ver", "1")
        .with_attr("envid", envid.to_string())
        .with_attr("xmlns", NAMESPACE)
        .with_child(child);
    Bytes::from(root.to_xml())
}

/// `<rpl id="rpl:NAME">` answering `command`, echoing its seqid and envid.
pub fn reply(command: &Command, code: ResultCode, data: Element) -> Element {
    Element::new("rpl")
        .with_attr("id", format!("rpl:{}", command.name))
        .with_attr("seqid", command.seqid.clone())
        .with_child(
            Element::new("commandid")
                .with_attr("seqid", command.seqid.clone())
                .with_attr("envid", command.envid.clone()),
        )
        .with_child(
            Element::new("resp")
                .with_attr("code", code.code().to_string())
                .with_text(code.token()),
        )
        .with_child(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_reply() {
        let body = br#"<xccos ver="1" envid="1804289383" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:requri" seqid="1"><data/></cmd></xccos>"#;
        let Incoming::Command(cmd) = parse_incoming(body, &XmlLimits::default()).unwrap() else {
            panic!("not a command")
        };
        assert_eq!(
            (cmd.name.as_str(), cmd.envid.as_str()),
            ("requri", "1804289383")
        );
        let out = envelope(5, reply(&cmd, ResultCode::Ok, Element::new("data")));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"<xccos ver="1" envid="5" xmlns="urn:parlano:xml:ns:xccos"><rpl id="rpl:requri" seqid="1"><commandid seqid="1" envid="1804289383"/><resp code="200">SUCCESS_OK</resp><data/></rpl></xccos>"#
        );
    }

    #[test]
    fn rejects_non_xccos() {
        let limits = XmlLimits::default();
        assert!(matches!(
            parse_incoming(b"<foo/>", &limits),
            Err(EnvelopeError::NotXccos(_))
        ));
        assert!(matches!(
            parse_incoming(b"<xccos/>", &limits),
            Err(EnvelopeError::Empty)
        ));
        assert!(matches!(
            parse_incoming(b"<xccos><cmd seqid=\"1\"/></xccos>", &limits),
            Err(EnvelopeError::MissingCommandId)
        ));
    }
}
