//! One SIP connection on perch's own codec: bytes in, framed and parsed by
//! `lync::sip::framer::decode` and `Message::parse`; every request the server sends is
//! answered 200 (built by `lync::sip::response::response`) before the caller sees it.
//! Tests that speak raw bytes use the lower half alone: [`SipConn::queue`], `flush`,
//! `read_some` and [`SipConn::next_frame`].
//! Reading is cancel-safe (`read_some`), parsing is synchronous (`drain`), writes are
//! buffered and flushed in one go with a deadline. Once the connection has an MS-SIPAE
//! security association (NTLM sign-in), every message perch sends must verify under it
//! (those that do not are reported as such, neither answered nor handled), and everything
//! sent is signed with it: the 200s here, requests through [`SipConn::sign`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::lync::session::sipae::{Association, SignatureError, SignedParts};
use crate::lync::sip::framer::{self, Frame, FrameError, FrameLimits};
use crate::lync::sip::response::response;
use crate::lync::sip::{Message, Method, ParseError, StartLine};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A write that does not finish in this time means the server stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("read failed: {0}")]
    Read(std::io::Error),
    #[error("write failed: {0}")]
    Write(std::io::Error),
    #[error("a write did not finish within {WRITE_TIMEOUT:?}")]
    WriteTimeout,
    #[error("the server's stream cannot be framed: {0}")]
    Frame(FrameError),
    #[error("the server sent an unparsable message: {0}")]
    Parse(ParseError),
}

impl WireError {
    /// The error kind as reports count it.
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::Connect(_) => "connection failed: connect",
            WireError::ConnectTimeout => "connection failed: connect timeout",
            WireError::Tls(_) => "connection failed: TLS handshake",
            WireError::Closed => "connection closed by server",
            WireError::Read(_) | WireError::Write(_) => "connection failed: i/o",
            WireError::WriteTimeout => "timeout: write",
            WireError::Frame(_) | WireError::Parse(_) => "protocol: bad message from server",
        }
    }
}

/// What arrived, after server requests were answered.
#[derive(Debug)]
pub enum Event {
    Response {
        cseq: u32,
        method: Method,
        code: u16,
        /// The To header, kept for INVITE responses (the dialog's remote tag).
        to: Option<String>,
        /// Every `WWW-Authenticate` of a 401, in order (perch offers Digest from the
        /// strongest algorithm down, then NTLM).
        challenges: Vec<String>,
    },
    /// A request from the server (already answered 200 unless it was an ACK).
    Request { method: Method, body: Bytes },
    /// A message whose MS-SIPAE signature did not verify: not answered, not handled.
    Unverified {
        error: SignatureError,
        /// The CSeq number and method; for a response, its status.
        cseq: u32,
        method: Method,
        code: Option<u16>,
    },
}

pub struct SipConn {
    stream: Box<dyn Stream>,
    read: BytesMut,
    write: BytesMut,
    limits: FrameLimits,
    pub local: SocketAddr,
    /// `TCP` or `TLS`, for Via headers.
    pub via_transport: &'static str,
    /// The MS-SIPAE security association, once NTLM sign-in made one.
    association: Option<Association>,
}

impl SipConn {
    pub fn new(stream: Box<dyn Stream>, local: SocketAddr, tls: bool) -> Self {
        Self {
            stream,
            read: BytesMut::with_capacity(8 * 1024),
            write: BytesMut::with_capacity(2 * 1024),
            limits: FrameLimits {
                // Replies to a bjoin of a crowded room list every occupant.
                max_body_bytes: 64 * 1024 * 1024,
                ..FrameLimits::default()
            },
            local,
            via_transport: if tls { "TLS" } else { "TCP" },
            association: None,
        }
    }

    /// From now on, sign what is sent and verify what arrives under `association`.
    pub fn secure(&mut self, association: Association) {
        self.association = Some(association);
    }

    /// The signature header for a message about to be queued, if the connection has an
    /// association. Messages must be queued in the order they were signed.
    pub fn sign(&mut self, parts: &SignedParts<'_>) -> Option<(&'static str, String)> {
        self.association.as_mut().map(|a| a.sign(parts))
    }

    /// Checks a message from the server under the association, if any. 401s are never
    /// signed: perch sends them when it starts a handshake over.
    fn verify(&mut self, message: &Message) -> Result<(), SignatureError> {
        match self.association.as_mut() {
            Some(_) if matches!(message.start, StartLine::Response { code: 401, .. }) => Ok(()),
            Some(association) => association.verify(message),
            None => Ok(()),
        }
    }

    /// Adds bytes to the write buffer; `flush` sends them.
    pub fn queue(&mut self, bytes: &[u8]) {
        self.write.extend_from_slice(bytes);
    }

    pub fn has_pending_writes(&self) -> bool {
        !self.write.is_empty()
    }

    /// Writes everything queued, within the write timeout.
    pub async fn flush(&mut self) -> Result<(), WireError> {
        if self.write.is_empty() {
            return Ok(());
        }
        let bytes = self.write.split().freeze();
        let stream = &mut self.stream;
        let write = async move {
            stream.write_all(&bytes).await?;
            stream.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| WireError::WriteTimeout)?
            .map_err(WireError::Write)
    }

    /// Waits for bytes from the server. Cancel-safe: use it inside `select!`.
    pub async fn read_some(&mut self) -> Result<(), WireError> {
        match self.stream.read_buf(&mut self.read).await {
            Ok(0) => Err(WireError::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(WireError::Read(e)),
        }
    }

    /// The next complete frame in the read buffer, as the server sent it (nothing answered,
    /// nothing verified): for callers that read the raw stream. `None` until one is whole.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        framer::decode(&mut self.read, &self.limits).map_err(WireError::Frame)
    }

    /// Whether the read buffer starts with a lone CRLF, the server's answer to a
    /// double-CRLF keep-alive (RFC 5626 §4.4.1); takes it if so. The framer skips it
    /// otherwise.
    pub fn take_keepalive_answer(&mut self) -> bool {
        let lone = self.read.starts_with(b"\r\n") && !self.read.starts_with(b"\r\n\r\n");
        if lone {
            let _ = self.read.split_to(2);
        }
        lone
    }

    /// Cuts every complete message out of the read buffer. Server requests are answered
    /// (queued for the next flush, signed under an association) and reported; responses
    /// are reported; messages that fail verification are reported as such.
    pub fn drain(&mut self, out: &mut Vec<Event>) -> Result<(), WireError> {
        loop {
            // A lone CRLF is the server's answer to a keep-alive; the framer skips it.
            let Some(frame) = self.next_frame()? else {
                return Ok(());
            };
            let Frame::Message { head, body } = frame else {
                continue;
            };
            let message = Message::parse(&head, body).map_err(WireError::Parse)?;
            let cseq = message.cseq().map_err(WireError::Parse)?;
            if let Err(error) = self.verify(&message) {
                out.push(Event::Unverified {
                    error,
                    cseq: cseq.number,
                    method: cseq.method,
                    code: match message.start {
                        StartLine::Response { code, .. } => Some(code),
                        StartLine::Request { .. } => None,
                    },
                });
                continue;
            }
            match message.start {
                StartLine::Response { code, .. } => {
                    let to = (cseq.method == Method::Invite)
                        .then(|| message.headers.get("To").map(str::to_owned))
                        .flatten();
                    let challenges = if code == 401 {
                        message
                            .headers
                            .get_all("WWW-Authenticate")
                            .map(str::to_owned)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    out.push(Event::Response {
                        cseq: cseq.number,
                        method: cseq.method,
                        code,
                        to,
                        challenges,
                    });
                }
                StartLine::Request { method, .. } => {
                    if method != Method::Ack {
                        let mut answer = response(&message.headers, 200, None);
                        if let Some((name, value)) = self.sign(&SignedParts::of(&answer)) {
                            answer.headers.push(name, value);
                        }
                        self.write.extend_from_slice(&answer.encode());
                    }
                    out.push(Event::Request {
                        method,
                        body: message.body,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::DuplexStream;

    /// A server's and a client's association from one NTLM exchange.
    fn pair() -> (Association, Association) {
        crate::lync::session::sipae::in_memory_pair("alice@example.test", "", "pw").unwrap()
    }

    fn parse(text: &str) -> Message {
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        Message::parse(
            format!("{head}\r\n\r\n").as_bytes(),
            Bytes::from(body.to_owned()),
        )
        .unwrap()
    }

    const INFO: &str = "INFO sip:alice@127.0.0.1:40000;transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:ocschat@example.test>;tag=s1\r\nTo: <sip:alice@example.test>;tag=pl1\r\nCall-ID: c1\r\nCSeq: 7 INFO\r\nContent-Length: 2\r\n\r\nhi";

    fn signed(server: &mut Association, text: &str) -> Bytes {
        let mut message = parse(text);
        let (name, value) = server.sign(&SignedParts::of(&message));
        message.headers.push(name, value);
        message.encode()
    }

    async fn receive(conn: &mut SipConn, server: &mut DuplexStream, bytes: &[u8]) -> Vec<Event> {
        server.write_all(bytes).await.unwrap();
        conn.read_some().await.unwrap();
        let mut events = Vec::new();
        conn.drain(&mut events).unwrap();
        events
    }

    /// Under an association, a signed INFO is answered with a signed 200 the server
    /// accepts; a replayed, an unsigned or a tampered one is reported and not answered;
    /// 401s pass unsigned.
    #[tokio::test]
    async fn signs_what_it_sends_and_verifies_what_arrives() {
        let (mut server, client) = pair();
        let (near, mut far) = tokio::io::duplex(64 * 1024);
        let mut conn = SipConn::new(Box::new(near), "127.0.0.1:40000".parse().unwrap(), false);
        conn.secure(client);

        let first = signed(&mut server, INFO);
        let events = receive(&mut conn, &mut far, &first).await;
        assert!(
            matches!(&events[..], [Event::Request { method: Method::Info, body }] if &body[..] == b"hi"),
            "{events:?}"
        );
        conn.flush().await.unwrap();
        let mut read = BytesMut::new();
        let (head, body) = loop {
            far.read_buf(&mut read).await.unwrap();
            if let Some(Frame::Message { head, body }) =
                framer::decode(&mut read, &FrameLimits::default()).unwrap()
            {
                break (head, body);
            }
        };
        let answer = Message::parse(&head, body).unwrap();
        assert!(matches!(
            answer.start,
            StartLine::Response { code: 200, .. }
        ));
        server.verify(&answer).expect("the server accepts our 200");

        let tampered = signed(&mut server, &INFO.replace("CSeq: 7", "CSeq: 8"))
            .iter()
            .copied()
            .collect::<Vec<u8>>();
        let tampered = String::from_utf8(tampered)
            .unwrap()
            .replace("tag=s1", "tag=s2");
        for (bytes, expected) in [
            (first.to_vec(), SignatureError::Replayed),
            (INFO.as_bytes().to_vec(), SignatureError::Unsigned),
            (tampered.into_bytes(), SignatureError::Invalid),
        ] {
            let events = receive(&mut conn, &mut far, &bytes).await;
            assert!(
                matches!(
                    &events[..],
                    [Event::Unverified { error, cseq: 7 | 8, method: Method::Info, code: None }]
                        if *error == expected
                ),
                "{expected:?}: {events:?}"
            );
            assert!(!conn.has_pending_writes(), "{expected:?} was answered");
        }

        let challenge = "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/TCP 127.0.0.1:40000\r\nFrom: <sip:alice@example.test>;tag=pl1\r\nTo: <sip:alice@example.test>;tag=x\r\nCall-ID: r1\r\nCSeq: 3 REGISTER\r\nWWW-Authenticate: NTLM realm=\"SIP Communications Service\", targetname=\"t\", version=4\r\nWWW-Authenticate: Digest realm=\"example.test\", nonce=\"n\"\r\nContent-Length: 0\r\n\r\n";
        let events = receive(&mut conn, &mut far, challenge.as_bytes()).await;
        assert!(
            matches!(&events[..], [Event::Response { code: 401, challenges, .. }] if challenges.len() == 2),
            "{events:?}"
        );
    }
}
