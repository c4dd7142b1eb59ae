//! RFC 4475 SIP torture tests: every message of the RFC is framed and parsed in process and
//! checked against what the RFC expects of it, then sent over a real TCP connection.
//!
//! Where the messages come from: tests/data/rfc4475/ holds the 50 `.dat` files of RFC 4475
//! Appendix A, the RFC's own messages, bit-exact (escaped NULs, UTF-8 display names,
//! trailing spaces and all). They were copied from the corpus shipped in the `sipx-testkit`
//! 1.0.1 crate, which extracts them from that archive; only the messages were taken, not the
//! crate's code or its classification. The expectations below are ours, from the RFC's text.
//!
//! Why not `sipx-testkit` as a dev-dependency: it builds here, but it pulls in about 95
//! crates perch does not otherwise build, among them a whole SIP stack (sipx-sip, -ua, -call,
//! -media, -rtp, -audio), hickory-resolver, quinn, tungstenite, a second quick-xml and older
//! md-5/sha2 majors. Compiling only its SIP, DNS and QUIC crates took 43 s on this machine,
//! over the 20 s we allow a test dependency, and all we need from it is 50 data files.
//!
//! Over TCP a message is cut by Content-Length, not by the datagram the RFC imagines, so
//! a few cases read differently on a stream (see `why` in the table): the RFC itself says a
//! too-large Content-Length on a stream means waiting and closing (§3.1.2.2), and octets
//! after a message's body are the next message (§3.1.1.8, §3.4.1).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use perch::lync::sip::framer::{self, Frame, FrameLimits};
use perch::lync::sip::message::salvage_response_headers;
use perch::lync::sip::{Message, Method, NameAddr, SipUri, StartLine};
use tokio::net::TcpStream;

use crate::support::*;

/// What happens to the message a case is about: the first one in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Frames and parses.
    Accept,
    /// The parser refuses it (400, the stream goes on).
    ParseError,
    /// The framer refuses it (400/413/513, then the connection is closed).
    FramingError,
    /// Never becomes a message: on a stream it is still waiting for bytes.
    Incomplete,
}

use Expect::{Accept, FramingError, Incomplete, ParseError};

struct Case {
    name: &'static str,
    section: &'static str,
    expect: Expect,
    /// Why, where it is not plain from the section: the RFC's words, or how a stream reads it.
    why: &'static str,
}

const fn case(
    name: &'static str,
    section: &'static str,
    expect: Expect,
    why: &'static str,
) -> Case {
    Case {
        name,
        section,
        expect,
        why,
    }
}

/// Every file of the archive, in RFC order.
const CASES: &[Case] = &[
    // 3.1.1 Valid messages: all must frame and parse.
    case("wsinv", "3.1.1.1", Accept, "short tortuous INVITE"),
    case(
        "intmeth",
        "3.1.1.2",
        Accept,
        "wide range of valid characters",
    ),
    case("esc01", "3.1.1.3", Accept, "valid % escaping"),
    case("escnull", "3.1.1.4", Accept, "escaped NULs in URIs"),
    case("esc02", "3.1.1.5", Accept, "% that is not an escape"),
    case(
        "lwsdisp",
        "3.1.1.6",
        Accept,
        "no LWS between display name and <",
    ),
    case("longreq", "3.1.1.7", Accept, "long header values"),
    case(
        "dblreq",
        "3.1.1.8",
        Accept,
        "the REGISTER; on TCP the trailing octets are a second message, an INVITE whose \
         body is 5 bytes longer than its Content-Length, and those 5 bytes are junk",
    ),
    case(
        "semiuri",
        "3.1.1.9",
        Accept,
        "; in the Request-URI user part",
    ),
    case(
        "transports",
        "3.1.1.10",
        Accept,
        "unknown transports in Via",
    ),
    case(
        "mpart01",
        "3.1.1.11",
        Accept,
        "multipart body with binary part",
    ),
    case("unreason", "3.1.1.12", Accept, "UTF-8 reason phrase"),
    case("noreason", "3.1.1.13", Accept, "empty reason phrase"),
    // 3.1.2 Invalid messages.
    case(
        "badinv01",
        "3.1.2.1",
        ParseError,
        "stray ; and , in Via: 400",
    ),
    case(
        "clerr",
        "3.1.2.2",
        Incomplete,
        "Content-Length beyond the data: on a stream the RFC says wait, then close",
    ),
    case(
        "ncl",
        "3.1.2.3",
        FramingError,
        "negative Content-Length: on TCP, close",
    ),
    case("scalar02", "3.1.2.4", ParseError, "CSeq > 2^32-1: 400"),
    case(
        "scalarlg",
        "3.1.2.5",
        ParseError,
        "response, CSeq > 2^32-1: dropped",
    ),
    case(
        "quotbal",
        "3.1.2.6",
        ParseError,
        "unterminated quote in To: 400",
    ),
    case(
        "ltgtruri",
        "3.1.2.7",
        ParseError,
        "<> around the Request-URI: 400",
    ),
    case(
        "lwsruri",
        "3.1.2.8",
        ParseError,
        "LWS inside the Request-URI: 400",
    ),
    case(
        "lwsstart",
        "3.1.2.9",
        ParseError,
        "several SP in the request line",
    ),
    case("trws", "3.1.2.10", ParseError, "SP after SIP-Version"),
    case(
        "escruri",
        "3.1.2.11",
        ParseError,
        "headers in the Request-URI",
    ),
    case(
        "baddate",
        "3.1.2.12",
        Accept,
        "EXCEPTION: non-GMT Date; the RFC lets an element ignore the Date value and \
         process the request, and perch never reads Date",
    ),
    case(
        "regbadct",
        "3.1.2.13",
        ParseError,
        "Contact addr-spec with ? not in <>",
    ),
    case("badaspec", "3.1.2.14", ParseError, "spaces inside <> in To"),
    case(
        "baddn",
        "3.1.2.15",
        Incomplete,
        "the archive's file has no blank line after its headers, so a stream waits; \
         with the blank line added it is a parse error (see VARIANTS)",
    ),
    case(
        "badvers",
        "3.1.2.16",
        ParseError,
        "SIP/7.0 (the RFC wants 505)",
    ),
    case(
        "mismatch01",
        "3.1.2.17",
        ParseError,
        "CSeq method differs: 400",
    ),
    case(
        "mismatch02",
        "3.1.2.18",
        ParseError,
        "unknown method, CSeq differs: 501 or 400",
    ),
    case("bigcode", "3.1.2.19", ParseError, "status > 699: dropped"),
    // 3.2 Transaction layer, 3.3 application layer, 3.4 backward compatibility: the
    // syntax is valid except where noted; the rest is for the session to answer.
    case(
        "badbranch",
        "3.2.1",
        Accept,
        "branch without transaction id",
    ),
    case("insuf", "3.3.1", ParseError, "no To, From, Call-ID: 400"),
    case(
        "unkscm",
        "3.3.2",
        Accept,
        "unknown Request-URI scheme (416 is the session's)",
    ),
    case("novelsc", "3.3.3", Accept, "atypical Request-URI scheme"),
    case("unksm2", "3.3.4", Accept, "non-SIP URIs in To/From/Contact"),
    case("bext01", "3.3.5", Accept, "unknown Require/Proxy-Require"),
    case("invut", "3.3.6", Accept, "unknown Content-Type"),
    case("regaut01", "3.3.7", Accept, "unknown Authorization scheme"),
    case(
        "multi01",
        "3.3.8",
        ParseError,
        "several To/From/Call-ID/CSeq: 400",
    ),
    case(
        "mcl01",
        "3.3.9",
        FramingError,
        "two Content-Length values: 400, close",
    ),
    case("bcast", "3.3.10", Accept, "response with a broadcast Via"),
    case("zeromf", "3.3.11", Accept, "Max-Forwards: 0"),
    case("cparam01", "3.3.12", Accept, "Contact header parameter"),
    case("cparam02", "3.3.13", Accept, "Contact URI parameter"),
    case(
        "regescrt",
        "3.3.14",
        Accept,
        "escaped header in a Contact URI",
    ),
    case("sdp01", "3.3.15", Accept, "unacceptable Accept"),
    case(
        "inv2543",
        "3.4.1",
        Accept,
        "RFC 2543 syntax; it has no Content-Length, which TCP requires (RFC 3261 \
         §20.14), so on a stream the body is read as the start of a next message",
    ),
    // In the archive but referenced by no section of the RFC.
    case("test", "-", ParseError, "request line without SIP-Version"),
];

/// Hand-made variants of archive messages, and why.
const VARIANTS: &[(&str, &str, Expect, &str)] = &[(
    "baddn+blank-line",
    "baddn",
    ParseError,
    "baddn with its missing blank line: unquoted , in the From display name: 400",
)];

fn corpus(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Input {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
    why: &'static str,
}

/// Every case's bytes, the archive's and the variants', with what is expected of them.
fn all_inputs() -> Vec<Input> {
    let mut inputs: Vec<_> = CASES
        .iter()
        .map(|c| Input {
            name: c.name,
            bytes: corpus(c.name),
            expect: c.expect,
            why: c.why,
        })
        .collect();
    for &(name, base, expect, why) in VARIANTS {
        let mut bytes = corpus(base);
        bytes.extend_from_slice(b"\r\n");
        inputs.push(Input {
            name,
            bytes,
            expect,
            why,
        });
    }
    inputs
}

/// One unit the framer cut from a case, and what the parser made of it.
#[derive(Debug)]
#[allow(dead_code)] // the details are read through Debug, in failure messages
enum Unit {
    Ping,
    Parsed(Box<Message>),
    /// Framing was intact; the session answers 400 if it can salvage the headers to.
    Unparsable {
        head: Bytes,
        error: String,
    },
    /// The stream cannot go on.
    FramingError(String),
    /// Bytes left that do not make a message yet.
    Incomplete(usize),
}

/// Frames and parses a whole input as one stream would, the way the transport does.
fn read_stream(bytes: &[u8]) -> Vec<Unit> {
    let mut buf = BytesMut::from(bytes);
    let mut units = Vec::new();
    loop {
        match framer::decode(&mut buf, &FrameLimits::default()) {
            Ok(Some(Frame::Ping)) => units.push(Unit::Ping),
            Ok(Some(Frame::Message { head, body })) => {
                units.push(match Message::parse(&head, body) {
                    Ok(message) => Unit::Parsed(Box::new(message)),
                    Err(error) => Unit::Unparsable {
                        head,
                        error: error.to_string(),
                    },
                })
            }
            Ok(None) => {
                if !buf.is_empty() {
                    units.push(Unit::Incomplete(buf.len()));
                }
                return units;
            }
            Err(error) => {
                units.push(Unit::FramingError(error.to_string()));
                return units;
            }
        }
    }
}

fn outcome(units: &[Unit]) -> Option<Expect> {
    units.iter().find_map(|unit| match unit {
        Unit::Ping => None,
        Unit::Parsed(_) => Some(Accept),
        Unit::Unparsable { .. } => Some(ParseError),
        Unit::FramingError(_) => Some(FramingError),
        Unit::Incomplete(_) => Some(Incomplete),
    })
}

#[test]
fn every_case_frames_and_parses_as_the_rfc_expects() {
    assert_eq!(CASES.len(), 50, "the archive holds 50 messages");
    let (valid, invalid) = (
        CASES.iter().filter(|c| c.section.starts_with("3.1.1.")),
        CASES.iter().filter(|c| c.section.starts_with("3.1.2.")),
    );
    assert_eq!((valid.count(), invalid.count()), (13, 19));

    let mut failures = Vec::new();
    for Input {
        name,
        bytes,
        expect,
        why,
    } in all_inputs()
    {
        match catch_unwind(AssertUnwindSafe(|| read_stream(&bytes))) {
            Err(_) => failures.push(format!("{name}: panicked")),
            Ok(units) => {
                let got = outcome(&units);
                if got != Some(expect) {
                    failures.push(format!(
                        "{name} ({why}): expected {expect:?}, got {units:?}"
                    ));
                }
                // What perch accepts, it can write back out and read again.
                for unit in &units {
                    if let Unit::Parsed(message) = unit {
                        let again = read_stream(&message.encode());
                        match again.as_slice() {
                            [Unit::Parsed(back)] if back.start == message.start => {}
                            other => failures.push(format!("{name}: re-encoded as {other:?}")),
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The parsed views of the valid messages say what the RFC says they contain: the escaped,
/// folded and unusual forms are read, not merely tolerated.
#[test]
fn valid_cases_read_as_the_rfc_describes() {
    let first = |name: &str| match read_stream(&corpus(name)).into_iter().next() {
        Some(Unit::Parsed(message)) => *message,
        other => panic!("{name}: {other:?}"),
    };
    let addr = |m: &Message, h: &str| NameAddr::parse(m.headers.get(h).unwrap()).unwrap();
    let ruri = |m: &Message| match &m.start {
        StartLine::Request { uri, .. } => SipUri::parse(uri).unwrap(),
        StartLine::Response { .. } => panic!("not a request"),
    };

    let m = first("wsinv");
    assert_eq!(m.call_id(), "wsinv.ndaksdj@192.0.2.1");
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.number, cseq.method), (9, Method::Invite));
    let to = addr(&m, "To");
    assert_eq!(to.uri, "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some("1918181833n"));
    let from = addr(&m, "From");
    assert_eq!(from.display.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.uri, "sip:jdrosen@example.com");
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(m.headers.tokens("Via").count(), 3);
    let contact = addr(&m, "Contact");
    assert_eq!(contact.display.as_deref(), Some(r#"Quoted string """#));
    assert_eq!(contact.params.value("newparam"), Some("newvalue"));
    assert_eq!(contact.params.get("secondparam"), Some(None));
    assert_eq!(contact.params.value("q"), Some("0.33"));
    assert_eq!(m.headers.get("Max-Forwards"), Some("0068"));
    assert_eq!(m.body.len(), 150);

    let m = first("intmeth");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(&Method::Extension(method.into())));
    assert_eq!(m.cseq().unwrap().method.as_str(), method);
    let uri = ruri(&m);
    assert_eq!(
        (uri.user.as_deref(), uri.host.as_str()),
        (
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"),
            "example.com"
        )
    );
    assert_eq!(
        addr(&m, "To").display.as_deref(),
        Some("BEL:\x07 NUL:\0 DEL:\x7f")
    );
    let from = addr(&m, "From");
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.params.value("fromParam''~+*_!.-%"),
        Some("\u{0440}\u{0430}\u{0431}\u{043e}\u{0442}\u{0430}\u{044e}\u{0449}\u{0438}\u{0439}")
    );
    assert_eq!(
        m.headers.get("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}\u{5927}\u{505c}\u{96fb}")
    );

    let m = first("esc01");
    let uri = ruri(&m);
    assert_eq!(uri.user.as_deref(), Some("sips%3Auser%40example.com"));
    assert_eq!(uri.host, "example.net");
    assert_eq!(
        addr(&m, "Contact").uri,
        "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    );
    assert_eq!(addr(&m, "To").uri, "sip:%75se%72@example.com");

    let m = first("escnull");
    assert_eq!(m.headers.get_all("Contact").count(), 2);
    assert_eq!(addr(&m, "To").uri, "sip:null-%00-null@example.com");

    let m = first("esc02");
    assert_eq!(m.method(), Some(&Method::Extension("RE%47IST%45R".into())));
    assert_eq!(
        m.headers.get_all("Contact").count(),
        2,
        "C%6Fntact is not Contact"
    );
    assert_eq!(addr(&m, "To").display.as_deref(), Some("%Z%45"));

    let m = first("lwsdisp");
    let from = addr(&m, "From");
    assert_eq!(
        (from.display.as_deref(), from.tag()),
        (Some("caller"), Some("323"))
    );

    let m = first("longreq");
    assert_eq!(m.headers.get_all("Via").count(), 34);
    assert!(
        addr(&m, "To")
            .display
            .unwrap()
            .ends_with("extreme proportion")
    );
    assert_eq!(m.body.len(), 150);

    let m = first("dblreq");
    assert_eq!(m.method(), Some(&Method::Register));
    assert_eq!(m.call_id(), "dblreq.0ha0isndaksdj99sdfafnl3lk233412");
    assert!(m.body.is_empty());

    let m = first("semiuri");
    let uri = ruri(&m);
    assert_eq!(
        (uri.user.as_deref(), uri.host.as_str()),
        (Some("user;par=u%40example.net"), "example.com")
    );
    assert_eq!(m.headers.tokens("Accept").count(), 6);

    let m = first("transports");
    assert_eq!(m.headers.get_all("Via").count(), 5);

    let m = first("mpart01");
    assert_eq!(m.body.len(), 553);

    let m = first("unreason");
    let StartLine::Response { code, reason } = &m.start else {
        panic!("not a response")
    };
    assert_eq!(*code, 200);
    assert!(reason.starts_with("= 2**3 * 5**2 "), "{reason}");
    assert!(!reason.is_ascii());

    let m = first("noreason");
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 100,
            reason: String::new()
        }
    );
}

/// Framed fine, yet the connection is closed: the session closes when it cannot form a
/// response to an unparsable message (no Via/From/To/Call-ID/CSeq to copy, or the message
/// is itself a response) instead of dropping it and reading on. RFC 4475 asks only that
/// the responses be dropped (§3.1.2.5, §3.1.2.19) and insuf answered with 400 (§3.3.1).
/// dblreq is here for the 5 junk bytes after its second message (see CASES).
const CLOSED_THOUGH_FRAMED: &[&str] = &["dblreq", "scalarlg", "bigcode", "insuf", "test"];

/// What a server should do with a case's bytes, worked out in process.
struct WireExpectation {
    /// Responses the server sends before it reads anything else (requests and salvageable
    /// parse errors get one each; responses and ACKs none).
    responses: usize,
    /// Keep-alive answers among them.
    pongs: usize,
    /// Whether the stream is still in step afterwards (everything framed, nothing closed it).
    stays_open: bool,
    /// Statuses allowed for responses to what did not parse.
    refusals: &'static [u16],
}

fn wire_expectation(name: &str, bytes: &[u8]) -> WireExpectation {
    let mut expectation = WireExpectation {
        responses: 0,
        pongs: 0,
        stays_open: true,
        refusals: if name == "badvers" { &[505] } else { &[400] },
    };
    for unit in read_stream(bytes) {
        match unit {
            Unit::Ping => expectation.pongs += 1,
            Unit::Parsed(message) => {
                if !matches!(
                    message.method(),
                    None | Some(Method::Ack | Method::Benotify)
                ) {
                    expectation.responses += 1;
                }
            }
            Unit::Unparsable { head, .. } => match salvage_response_headers(&head) {
                Some(_) => expectation.responses += 1,
                None => {
                    expectation.stays_open = false;
                    break;
                }
            },
            Unit::FramingError(_) | Unit::Incomplete(_) => {
                expectation.stays_open = false;
                break;
            }
        }
    }
    expectation
}

/// Sends one case on its own connection and checks the server's reaction. Returns a line
/// for the log: the statuses seen and how the connection ended.
async fn wire_case(addr: std::net::SocketAddr, input: Input) -> String {
    let Input {
        name,
        bytes,
        expect,
        why,
    } = input;
    let expectation = wire_expectation(name, &bytes);
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut client = Client::over(Box::new(tcp), "tcp");
    // A peer that closes on us early may make the write fail; that is a clean close.
    let _ = client.try_send(&bytes).await;
    let probe_id = format!("probe-{name}");
    if expectation.stays_open {
        let probe = client.request(
            "OPTIONS",
            &format!("sip:{DOMAIN}"),
            &probe_id,
            1,
            &format!("<sip:{DOMAIN}>"),
            &[],
            "",
        );
        client.send(&probe).await;
    }
    let mut statuses = Vec::new();
    let mut pongs = 0;
    let ending = loop {
        match client.receive().await {
            None => break "closed",
            Some(Received::Pong) => pongs += 1,
            Some(Received::Message(m)) if m.call_id() == probe_id => {
                assert_eq!(status(&m), 200, "{name}: the probe OPTIONS");
                break "probe answered";
            }
            Some(Received::Message(m)) => {
                assert!(
                    matches!(m.start, StartLine::Response { .. }),
                    "{name}: server sent a request {m:?}"
                );
                statuses.push(status(&m));
            }
            Some(Received::Unparsed(head)) => {
                // A 400 echoing a header our strict parser refuses (e.g. a bad CSeq).
                let line = String::from_utf8_lossy(&head[..head.len().min(12)]).into_owned();
                let code = line
                    .strip_prefix("SIP/2.0 ")
                    .and_then(|rest| rest.get(..3))
                    .and_then(|code| code.parse().ok())
                    .unwrap_or_else(|| panic!("{name}: server sent {line:?}"));
                statuses.push(code);
            }
        }
    };
    let summary = format!("{name:18} {expect:?}: statuses {statuses:?}, {ending} ({why})");
    if expectation.stays_open {
        assert_eq!(ending, "probe answered", "{summary}");
    } else {
        assert_eq!(ending, "closed", "{summary}");
    }
    assert_eq!(pongs, expectation.pongs, "{summary}");
    // Framing errors get a response only when one can be formed; everything else that
    // needs one gets exactly one.
    if expect == FramingError {
        assert!(statuses.len() <= 1, "{summary}");
    } else {
        assert_eq!(statuses.len(), expectation.responses, "{summary}");
    }
    // Where the RFC names the answer for a message that parses (§3.3).
    let named = match name {
        "unkscm" | "novelsc" => Some(416),
        "bext01" => Some(420),
        _ => None,
    };
    if let Some(want) = named {
        assert_eq!(statuses.first(), Some(&want), "{summary}");
    }
    if matches!(expect, ParseError | FramingError) && !statuses.is_empty() {
        let refusal = statuses[0];
        assert!(
            expectation.refusals.contains(&refusal) || (expect == FramingError && refusal >= 400),
            "{summary}"
        );
    }
    summary
}

#[tokio::test]
async fn every_case_over_tcp_leaves_the_server_answering() {
    let started = Instant::now();
    // Messages that never complete are dropped after 1 s instead of 30.
    let server = TestServer::start(|c| c.limits.message_timeout_secs = 1).await;
    let addr = server.running().tcp_addr().unwrap();
    // Every case on its own connection, all at once: the slow ones (waiting out the
    // message timeout) overlap.
    let tasks: Vec<_> = all_inputs()
        .into_iter()
        .map(|input| (input.name, tokio::spawn(wire_case(addr, input))))
        .collect();
    let closed_though_framed: Vec<_> = all_inputs()
        .into_iter()
        .filter(|input| {
            let units = read_stream(&input.bytes);
            let framed = units
                .iter()
                .all(|u| matches!(u, Unit::Ping | Unit::Parsed(_) | Unit::Unparsable { .. }));
            framed && !wire_expectation(input.name, &input.bytes).stays_open
        })
        .map(|input| input.name)
        .collect();
    assert_eq!(closed_though_framed, CLOSED_THOUGH_FRAMED);
    let mut failures = Vec::new();
    for (name, task) in tasks {
        match task.await {
            Ok(summary) => eprintln!("{summary}"),
            Err(error) => failures.push(format!("{name}: {error}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Still serving new connections.
    let mut client = server.tcp().await;
    client.send(&client.options(1)).await;
    assert_eq!(status(&client.response().await), 200);
    server.stop().await;
    eprintln!("torture over TCP: {:?}", started.elapsed());
}
