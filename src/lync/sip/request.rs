//! Requests written straight from their parts: the one builder for the requests perch sends
//! in its dialogs (INFO, BYE) and for the client side in perch's tools (the integration
//! tests, perch-load and its null responder), so every SIP request in the tree is shaped
//! in one place.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

/// The headers every request carries, in the order they are written.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    /// The whole Via value, e.g. `SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1`; SIPE sends
    /// none with a branch inside dialogs.
    pub via: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
}

impl RequestHead<'_> {
    /// The request with `headers` after the common ones, then Content-Length and `body`.
    pub fn encode(&self, headers: &[(&str, &str)], body: &[u8]) -> Bytes {
        let mut text = String::with_capacity(256 + headers.len() * 40);
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "{method} {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n",
            method = self.method,
            uri = self.uri,
            via = self.via,
            from = self.from,
            to = self.to,
            call_id = self.call_id,
            cseq = self.cseq,
        );
        for (name, value) in headers {
            let _ = write!(text, "{name}: {value}\r\n");
        }
        let _ = write!(text, "Content-Length: {}\r\n\r\n", body.len());
        let mut out = BytesMut::with_capacity(text.len() + body.len());
        out.put_slice(text.as_bytes());
        out.put_slice(body);
        out.freeze()
    }
}

/// A SIPE-shaped client's part of every request it sends, made once per client: its Via
/// (without a branch, as SIPE sends none inside dialogs) and its From (address, tag and
/// endpoint id). perch-load and the tests speak through it.
#[derive(Debug, Clone)]
pub struct ClientLine {
    via: String,
    from: String,
}

impl ClientLine {
    /// `transport` is the Via token (`TLS`, `TCP`), `local` the client's address.
    pub fn new(transport: &str, local: &str, aor: &str, tag: &str, epid: &str) -> ClientLine {
        ClientLine {
            via: format!("SIP/2.0/{transport} {local}"),
            from: format!("<sip:{aor}>;tag={tag};epid={epid}"),
        }
    }

    /// The head of a request from this client; `encode` it with its headers and body.
    pub fn head<'a>(
        &'a self,
        method: &'a str,
        uri: &'a str,
        to: &'a str,
        call_id: &'a str,
        cseq: u32,
    ) -> RequestHead<'a> {
        RequestHead {
            method,
            uri,
            via: &self.via,
            from: &self.from,
            to,
            call_id,
            cseq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lync::sip::{Message, Method, StartLine};

    #[test]
    fn encodes_a_request_perch_parses_back() {
        let head = RequestHead {
            method: "INFO",
            uri: "sip:alice@192.0.2.7:5061;transport=tls",
            via: "SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1",
            from: "<sip:ocschat@example.test>;tag=s1",
            to: "<sip:alice@example.test>;tag=c1",
            call_id: "call-1",
            cseq: 7,
        };
        let bytes = head.encode(&[("Content-Type", "text/plain")], b"hello");
        let text = std::str::from_utf8(&bytes).unwrap();
        let (head_text, body) = text.split_once("\r\n\r\n").unwrap();
        let message = Message::parse(head_text.as_bytes(), Bytes::from(body.to_owned())).unwrap();
        assert!(matches!(
            &message.start,
            StartLine::Request { method: Method::Info, uri } if uri == head.uri
        ));
        assert_eq!(message.call_id(), "call-1");
        assert_eq!(message.cseq().unwrap().number, 7);
        assert_eq!(message.headers.get("Content-Type"), Some("text/plain"));
        assert_eq!(message.headers.get("Content-Length"), Some("5"));
        assert_eq!(&message.body[..], b"hello");
    }
}
