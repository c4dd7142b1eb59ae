//! Replays every transcript under conformance/transcripts/ against a fresh server over TLS
//! (the format is described in that folder's README).

use std::collections::HashMap;
use std::path::PathBuf;

use perch::lync::sip::{Message, NameAddr, StartLine};
use perch::lync::xccos::xml::{Element, parse};

use crate::chat::{seed, snapshot, trusted};
use crate::support::*;

const CHAT: &str = "sip:ocschat@example.test";

/// Where replays leave every envelope exchanged, for the schema check in
/// conformance/xsd/run.sh (xmllint against schemas/xccos.xsd).
fn dump_dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("xccos-envelopes")
        .join(kind)
}

fn dump(kind: &str, body: &[u8]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = dump_dir(kind);
    let _ = std::fs::create_dir_all(&dir);
    let name = format!("{:04}.xml", N.fetch_add(1, Ordering::Relaxed));
    let _ = std::fs::write(dir.join(name), body);
}

struct Party {
    client: Client,
    call_id: String,
    to: String,
    cseq: u32,
    last_response: Option<Message>,
}

impl Party {
    async fn send(&mut self, what: &str) {
        let (method, body) = what.split_once(' ').unwrap_or((what, ""));
        let aor = self.client.aor();
        let bytes = match method {
            "REGISTER" => {
                let call_id = self.client.new_call_id();
                self.client.request(
                    "REGISTER",
                    &format!("sip:{DOMAIN}"),
                    &call_id,
                    1,
                    &format!("<sip:{aor}>"),
                    &[("Contact", "<sip:127.0.0.1:5555;transport=tls>")],
                    "",
                )
            }
            "SUBSCRIBE" => {
                let call_id = self.client.new_call_id();
                self.client.request(
                    "SUBSCRIBE",
                    &format!("sip:{aor}"),
                    &call_id,
                    1,
                    &format!("<sip:{aor}>"),
                    &[("Event", "vnd-microsoft-provisioning-v2"), ("Expires", "0")],
                    "",
                )
            }
            "INVITE" => {
                self.call_id = self.client.new_call_id();
                self.cseq = 1;
                self.to = format!("<{CHAT}>");
                let contact = format!("<sip:{aor};gruu>");
                self.client.request(
                    "INVITE",
                    CHAT,
                    &self.call_id,
                    1,
                    &self.to,
                    &[("Contact", &contact), ("Content-Type", "application/sdp")],
                    "v=0\r\n",
                )
            }
            "ACK" => self
                .client
                .request("ACK", CHAT, &self.call_id, 1, &self.to, &[], ""),
            "INFO" | "BYE" | "UPDATE" => {
                self.cseq += 1;
                if !body.is_empty() {
                    dump("accepted", body.as_bytes());
                }
                let content_type: &[(&str, &str)] = if body.is_empty() {
                    &[]
                } else {
                    &[("Content-Type", "text/plain")]
                };
                self.client.request(
                    method,
                    CHAT,
                    &self.call_id,
                    self.cseq,
                    &self.to,
                    content_type,
                    body,
                )
            }
            other => panic!("unknown client step {other}"),
        };
        self.client.send(&bytes).await;
    }

    async fn expect(&mut self, what: &str) -> Result<(), String> {
        if let Some(text) = what.strip_prefix("BODY ") {
            let body = self
                .last_response
                .as_ref()
                .map(body_text)
                .unwrap_or_default();
            return body
                .contains(text)
                .then_some(())
                .ok_or(format!("body lacks {text}: {body}"));
        }
        let message = self.client.message().await;
        if let Ok(code) = what.parse::<u16>() {
            let StartLine::Response { code: got, .. } = message.start else {
                return Err(format!("expected {code}, got a request: {message:?}"));
            };
            if got != code {
                return Err(format!("expected {code}, got {got}"));
            }
            if message.cseq().is_ok_and(|c| c.method.as_str() == "INVITE") {
                self.to = message.headers.get("To").unwrap_or_default().to_owned();
                assert!(
                    NameAddr::parse(&self.to)
                        .and_then(|n| n.tag().map(str::to_owned))
                        .is_some()
                );
            }
            self.last_response = Some(message);
            return Ok(());
        }
        let expected_xml = what
            .strip_prefix("INFO ")
            .ok_or(format!("unknown expectation {what}"))?;
        if message.method().map(|m| m.as_str()) != Some("INFO") {
            return Err(format!("expected a server INFO, got {message:?}"));
        }
        self.client.send(&answer(&message, 200)).await;
        dump("emitted", &message.body);
        let expected = parse(expected_xml.as_bytes(), &Default::default())
            .map_err(|e| format!("bad expected XML: {e}"))?;
        let actual = parse(&message.body, &Default::default())
            .map_err(|e| format!("perch sent bad XML: {e}"))?;
        matches(&expected, &actual, "").map_err(|e| format!("{e}\n  got: {}", body_text(&message)))
    }
}

fn value_matches(expected: &str, actual: &str) -> bool {
    match expected.strip_suffix('*') {
        Some(prefix) => actual.starts_with(prefix),
        None => expected == actual,
    }
}

fn matches(expected: &Element, actual: &Element, path: &str) -> Result<(), String> {
    let path = format!("{path}/{}", expected.name);
    if expected.name != actual.name {
        return Err(format!("{path}: element <{}> instead", actual.name));
    }
    let names = |e: &Element| {
        e.attributes
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    if names(expected) != names(actual) {
        return Err(format!(
            "{path}: attributes {:?}, expected {:?}",
            names(actual),
            names(expected)
        ));
    }
    for ((name, want), (_, got)) in expected.attributes.iter().zip(&actual.attributes) {
        if !value_matches(want, got) {
            return Err(format!("{path}/@{name}: {got:?}, expected {want:?}"));
        }
    }
    if !value_matches(&expected.text, &actual.text) {
        return Err(format!(
            "{path}: text {:?}, expected {:?}",
            actual.text, expected.text
        ));
    }
    if expected.children.len() != actual.children.len() {
        return Err(format!(
            "{path}: {} children, expected {}",
            actual.children.len(),
            expected.children.len()
        ));
    }
    for (e, a) in expected.children.iter().zip(&actual.children) {
        matches(e, a, &path)?;
    }
    Ok(())
}

async fn replay(file: PathBuf) -> Result<(), String> {
    let server = TestServer::start_seeded(trusted, seed).await;
    let mut substitutions: HashMap<String, String> = HashMap::new();
    for room in snapshot(server.store.as_ref()).rooms() {
        substitutions.insert(
            format!("{{{}}}", room.name),
            perch::lync::xccos::uri::room_uri(DOMAIN, &room.uid),
        );
        substitutions.insert(format!("{{{}.id}}", room.name), room.uid.clone());
    }
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let mut parties: HashMap<String, Party> = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut line = line.to_owned();
        for (key, value) in &substitutions {
            line = line.replace(key, value);
        }
        let mut parts = line.splitn(3, ' ');
        let (Some(who), Some(direction), Some(what)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("line {}: expected WHO DIR WHAT", number + 1));
        };
        if !parties.contains_key(who) {
            let mut client = server.tls().await;
            client.user = who.to_owned();
            client.tag = format!("{}", 1000 + parties.len());
            let party = Party {
                client,
                call_id: String::new(),
                to: String::new(),
                cseq: 0,
                last_response: None,
            };
            parties.insert(who.to_owned(), party);
        }
        let Some(party) = parties.get_mut(who) else {
            unreachable!()
        };
        let outcome = match direction {
            ">" => {
                party.send(what).await;
                Ok(())
            }
            "<" => party.expect(what).await,
            other => Err(format!("direction {other:?} is neither > nor <")),
        };
        outcome.map_err(|e| format!("{}:{}: {e}", file.display(), number + 1))?;
    }
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn every_transcript_replays() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/transcripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "transcripts missing in {}", dir.display());
    for kind in ["accepted", "emitted"] {
        let _ = std::fs::remove_dir_all(dump_dir(kind));
    }
    for file in files {
        if let Err(error) = replay(file).await {
            panic!("{error}");
        }
    }
}
