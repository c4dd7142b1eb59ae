//! One SIP connection on perch's own codec: bytes in, framed and parsed by
//! `perch::lync::sip::framer::decode` and `Message::parse`; every request the server sends is
//! answered 200 (built by `perch::lync::sip::response::response`) before the caller sees it.
//! Reading is cancel-safe (`read_some`), parsing is synchronous (`drain`), writes are
//! buffered and flushed in one go with a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use perch::lync::sip::framer::{self, Frame, FrameError, FrameLimits};
use perch::lync::sip::response::response;
use perch::lync::sip::{Message, Method, ParseError, StartLine};
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
        /// The first `WWW-Authenticate` of a 401 (perch offers its strongest first).
        challenge: Option<String>,
    },
    /// A request from the server (already answered 200 unless it was an ACK).
    Request { method: Method, body: Bytes },
}

pub struct SipConn {
    stream: Box<dyn Stream>,
    read: BytesMut,
    write: BytesMut,
    limits: FrameLimits,
    pub local: SocketAddr,
    /// `TCP` or `TLS`, for Via headers.
    pub via_transport: &'static str,
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

    /// Cuts every complete message out of the read buffer. Server requests are answered
    /// (queued for the next flush) and reported; responses are reported.
    pub fn drain(&mut self, out: &mut Vec<Event>) -> Result<(), WireError> {
        loop {
            // A lone CRLF is the server's answer to a keep-alive; the framer skips it.
            let frame = framer::decode(&mut self.read, &self.limits).map_err(WireError::Frame)?;
            let Some(frame) = frame else {
                return Ok(());
            };
            let Frame::Message { head, body } = frame else {
                continue;
            };
            let message = Message::parse(&head, body).map_err(WireError::Parse)?;
            let cseq = message.cseq().map_err(WireError::Parse)?;
            match message.start {
                StartLine::Response { code, .. } => {
                    let to = (cseq.method == Method::Invite)
                        .then(|| message.headers.get("To").map(str::to_owned))
                        .flatten();
                    let challenge = (code == 401)
                        .then(|| message.headers.get("WWW-Authenticate").map(str::to_owned))
                        .flatten();
                    out.push(Event::Response {
                        cseq: cseq.number,
                        method: cseq.method,
                        code,
                        to,
                        challenge,
                    });
                }
                StartLine::Request { method, .. } => {
                    if method != Method::Ack {
                        let answer = response(&message.headers, 200, None).encode();
                        self.write.extend_from_slice(&answer);
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
