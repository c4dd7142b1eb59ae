//! Building responses from requests (RFC 3261 §8.2.6): Via, From, To, Call-ID and CSeq are
//! copied back unchanged (SIPE matches on Call-ID + CSeq and sends no branch in dialogs).

use bytes::Bytes;

use super::message::{Headers, Message, StartLine};

pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        _ => "Unknown",
    }
}

/// A response to `request` with the standard reason phrase. `to_tag` is added to To when
/// the request's To has no tag yet (dialog-creating and out-of-dialog requests).
pub fn response(request_headers: &Headers, code: u16, to_tag: Option<&str>) -> Message {
    // Via, From, To, Call-ID, CSeq and room for what callers add (Contact, Content-Type...).
    let mut headers = Headers::with_capacity(8);
    for via in request_headers.get_all("Via") {
        headers.push("Via", via);
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(value) = request_headers.get(name) {
            let value = match (name, to_tag) {
                ("To", Some(tag)) if code > 100 && !has_tag(value) => {
                    format!("{value};tag={tag}")
                }
                _ => value.to_owned(),
            };
            headers.push(name, value);
        }
    }
    for route in request_headers.get_all("Record-Route") {
        headers.push("Record-Route", route);
    }
    Message {
        start: StartLine::Response {
            code,
            reason: reason_phrase(code).to_owned(),
        },
        headers,
        body: Bytes::new(),
    }
}

fn has_tag(name_addr: &str) -> bool {
    super::NameAddr::parse(name_addr).is_some_and(|n| n.tag().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_dialog_headers_and_adds_tag() {
        let mut req = Headers::default();
        req.push("Via", "SIP/2.0/tls 10.0.0.5:53412");
        req.push("Via", "SIP/2.0/tcp 10.0.0.6;branch=z9hG4bKx");
        req.push("From", "<sip:a@x>;tag=1;epid=e");
        req.push("To", "<sip:ocschat@x>");
        req.push("Call-ID", "c");
        req.push("CSeq", "1 INVITE");
        let resp = response(&req, 200, Some("srv"));
        assert_eq!(resp.headers.get_all("Via").count(), 2);
        assert_eq!(resp.headers.get("To"), Some("<sip:ocschat@x>;tag=srv"));
        assert_eq!(resp.headers.get("From"), Some("<sip:a@x>;tag=1;epid=e"));
        let trying = response(&req, 100, Some("srv"));
        assert_eq!(trying.headers.get("To"), Some("<sip:ocschat@x>"));
    }
}
