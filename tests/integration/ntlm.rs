//! NTLM sign-in with MS-SIPAE signing, as Pidgin-SIPE does it, over real sockets: the
//! two-step 401, the security association, signatures on every server message (responses
//! and the server's own INFO), verification of every client message, and refusals.

use base64::Engine as _;
use perch::core::credentials::NtHash;
use perch::lync::session::ntlm::{self, ClientEntropy, ClientIdentity, ReceivedChallenge};
use perch::lync::session::sipae::{self, Association, AuthFields, Role, SignedParts};
use perch::lync::sip::Message;

use crate::support::*;

const CHAT: &str = "sip:ocschat@example.test";

/// A request from `client` as bytes, signed by `association` when there is one.
fn signed(bytes: Vec<u8>, association: Option<&mut Association>) -> Vec<u8> {
    let Some(association) = association else {
        return bytes;
    };
    let mut message = parse(&bytes);
    let (name, value) = association.sign(&SignedParts::of(&message));
    message.headers.push(name, value);
    message.encode().to_vec()
}

fn parse(bytes: &[u8]) -> Message {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete message")
        + 4;
    Message::parse(
        &bytes[..split],
        bytes::Bytes::copy_from_slice(&bytes[split..]),
    )
    .unwrap()
}

/// A REGISTER as SIPE sends it: its `Supported` header is what gets it an NTLM offer.
fn register(client: &Client, cseq: u32, authorization: Option<&str>) -> Vec<u8> {
    let mut message = parse(&client.register_request("ntlm-reg", cseq, authorization));
    message
        .headers
        .push("Supported", "gruu-10, adhoclist, msrtc-event-categories");
    message.encode().to_vec()
}

fn ntlm_field(reply: &Message, name: &str) -> Option<String> {
    reply
        .headers
        .get_all("WWW-Authenticate")
        .filter_map(AuthFields::parse)
        .find(AuthFields::is_ntlm)
        .and_then(|fields| fields.get(name).map(str::to_owned))
}

/// SIPE's three REGISTERs. `login` is the NTLM (user, domain); returns the final response
/// and, when it is a 200, the client's association (having verified the 200's signature).
async fn sign_in(
    client: &mut Client,
    login: (&str, &str),
    password: &str,
) -> (Message, Option<Association>) {
    sign_in_from(client, login, password, 0).await
}

/// [`sign_in`] with the REGISTERs' CSeq numbers after `cseq` (for a second handshake on the
/// same connection).
async fn sign_in_from(
    client: &mut Client,
    login: (&str, &str),
    password: &str,
    cseq: u32,
) -> (Message, Option<Association>) {
    client.send(&register(client, cseq + 1, None)).await;
    let first = client.response().await;
    assert_eq!(status(&first), 401);
    let target = ntlm_field(&first, "targetname").expect("an NTLM challenge");
    assert_eq!(ntlm_field(&first, "realm").as_deref(), Some(sipae::REALM));
    assert_eq!(ntlm_field(&first, "version").as_deref(), Some("4"));
    assert!(
        first
            .headers
            .get("Date")
            .is_some_and(|d| d.ends_with("GMT"))
    );
    // Digest is offered beside NTLM.
    assert!(
        first
            .headers
            .get_all("WWW-Authenticate")
            .any(|v| v.starts_with("Digest"))
    );

    let empty = format!(
        "NTLM qop=\"auth\", realm=\"{}\", targetname=\"{target}\", gssapi-data=\"\", version=4",
        sipae::REALM
    );
    client.send(&register(client, cseq + 2, Some(&empty))).await;
    let second = client.response().await;
    assert_eq!(status(&second), 401);
    let opaque = ntlm_field(&second, "opaque").expect("opaque");
    let token = base64::engine::general_purpose::STANDARD
        .decode(ntlm_field(&second, "gssapi-data").expect("a CHALLENGE"))
        .unwrap();
    let challenge = ReceivedChallenge::parse(&token).unwrap();
    // What SIPE insists on before it answers at all.
    let needed = ntlm::flags::UNICODE
        | ntlm::flags::NTLM
        | ntlm::flags::ALWAYS_SIGN
        | ntlm::flags::EXTENDED_SESSION_SECURITY
        | ntlm::flags::TARGET_INFO
        | ntlm::flags::SIGN
        | ntlm::flags::DATAGRAM
        | ntlm::flags::IDENTIFY
        | ntlm::flags::KEY_EXCH;
    assert_eq!(challenge.flags & needed, needed);
    assert!(!challenge.target_info.is_empty());

    let hash = NtHash::derive(password);
    let identity = ClientIdentity {
        user: login.0,
        domain: login.1,
        workstation: "TESTHOST",
        nt_hash: &hash,
    };
    let entropy = ClientEntropy {
        client_challenge: [0x5a; 8],
        exported_session_key: [0x3c; 16],
        filetime: 0,
    };
    let (answer, keys) = ntlm::respond(&challenge, &identity, &entropy).unwrap();
    let mut association = Association::new(
        Role::Client,
        keys,
        opaque.clone(),
        target.clone(),
        std::time::Instant::now(),
    );
    // Version 4: the REGISTER carrying the AUTHENTICATE is already signed.
    let unsigned = register(client, cseq + 3, None);
    let (_, signature) = association.sign(&SignedParts::of(&parse(&unsigned)));
    let authorization = format!(
        "{signature}, gssapi-data=\"{}\", version=4",
        base64::engine::general_purpose::STANDARD.encode(answer.encode())
    );
    client
        .send(&register(client, cseq + 3, Some(&authorization)))
        .await;
    let reply = client.response().await;
    if status(&reply) != 200 {
        return (reply, None);
    }
    association
        .verify(&reply)
        .expect("the 200 to REGISTER is signed for us");
    (reply, Some(association))
}

fn options(client: &Client, n: u32) -> Vec<u8> {
    client.options(n)
}

#[tokio::test]
async fn sipe_style_sign_in_signs_every_server_message_over_tcp_and_tls() {
    let server = TestServer::start(|_| {}).await;
    for transport in ["tcp", "tls"] {
        let mut client = match transport {
            "tcp" => server.tcp().await,
            _ => server.tls().await,
        };
        let (ok, association) = sign_in(&mut client, ("alice@example.test", ""), "alice-pw").await;
        assert_eq!(status(&ok), 200, "{transport}");
        let mut association = association.unwrap();
        let info = ok.headers.get("Authentication-Info").unwrap();
        assert!(info.starts_with("NTLM rspauth=\""), "{info}");

        // A signed request is answered with a signed response.
        let request = signed(options(&client, 10), Some(&mut association));
        client.send(&request).await;
        let reply = client.response().await;
        assert_eq!(status(&reply), 200);
        association.verify(&reply).unwrap();

        // The chat dialog: the 200 to INVITE and the server's own INFO are signed, and the
        // 200 we owe for that INFO is accepted once signed.
        let call_id = client.new_call_id();
        let invite = client.invite_chat(
            &call_id,
            &[("Contact", "<sip:alice@example.test;transport=tcp>")],
            "",
        );
        client.send(&signed(invite, Some(&mut association))).await;
        let invited = client.response().await;
        assert_eq!(status(&invited), 200);
        association.verify(&invited).unwrap();
        let to = invited.headers.get("To").unwrap().to_owned();
        let requri = r#"<xccos ver="1" envid="7" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:requri" seqid="1"><data/></cmd></xccos>"#;
        let info = client.request(
            "INFO",
            CHAT,
            &call_id,
            2,
            &to,
            &[("Content-Type", "text/plain")],
            requri,
        );
        client.send(&signed(info, Some(&mut association))).await;
        let accepted = client.response().await;
        assert_eq!(status(&accepted), 200);
        association.verify(&accepted).unwrap();
        let server_info = client.message().await;
        assert!(body_text(&server_info).contains("rpl:requri"));
        association
            .verify(&server_info)
            .expect("the server's INFO is signed");
        client
            .send(&signed(answer(&server_info, 200), Some(&mut association)))
            .await;

        // The dialog still works after that answer: another signed request, signed reply.
        client
            .send(&signed(options(&client, 11), Some(&mut association)))
            .await;
        let reply = client.response().await;
        assert_eq!(status(&reply), 200);
        association.verify(&reply).unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn unsigned_tampered_and_replayed_messages_are_refused() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.tcp().await;
    let (ok, association) = sign_in(&mut client, ("alice", "EXAMPLE"), "alice-pw").await;
    assert_eq!(status(&ok), 200);
    let mut association = association.unwrap();

    client.send(&options(&client, 1)).await;
    assert_eq!(status(&client.response().await), 403, "unsigned");

    let good = signed(options(&client, 2), Some(&mut association));
    let tampered = String::from_utf8(good.clone())
        .unwrap()
        .replace("opt-2", "opt-9")
        .into_bytes();
    client.send(&tampered).await;
    assert_eq!(status(&client.response().await), 403, "tampered");

    client.send(&good).await;
    let reply = client.response().await;
    assert_eq!(status(&reply), 200, "the untampered original");
    association.verify(&reply).unwrap();

    client.send(&good).await;
    assert_eq!(status(&client.response().await), 403, "replayed");

    client
        .send(&signed(options(&client, 3), Some(&mut association)))
        .await;
    assert_eq!(status(&client.response().await), 200, "still signed in");
    server.stop().await;
}

#[tokio::test]
async fn wrong_passwords_foreign_domains_and_other_users_are_refused() {
    let server = TestServer::start(|_| {}).await;
    // Names match without regard to case, in any form SIPE may send them.
    for login in [
        ("ALICE", "example"),
        ("Alice@Example.Test", ""),
        ("alice", "example.test"),
    ] {
        let mut client = server.tcp().await;
        let (reply, _) = sign_in(&mut client, login, "alice-pw").await;
        assert_eq!(status(&reply), 200, "{login:?}");
    }
    for (login, password, code) in [
        (("alice", "EXAMPLE"), "wrong", 401),
        (("alice", "OTHER"), "alice-pw", 401),
        (("bob", "EXAMPLE"), "bob-pw", 403),
    ] {
        let mut client = server.tcp().await;
        let (reply, association) = sign_in(&mut client, login, password).await;
        assert_eq!(status(&reply), code, "{login:?} {password}");
        assert!(association.is_none());
    }
    // A disabled user with the right password.
    let mut client = server.tcp().await;
    client.user = "dave".into();
    let (reply, _) = sign_in(&mut client, ("dave", ""), "dave-pw").await;
    assert_eq!(status(&reply), 401);
    server.stop().await;
}

#[tokio::test]
async fn ntlm_failures_are_throttled_like_digest_ones() {
    let server = TestServer::start(|c| c.auth.max_failures_per_user = 2).await;
    for _ in 0..2 {
        let mut client = server.tcp().await;
        let (reply, _) = sign_in(&mut client, ("alice", ""), "guess").await;
        assert_eq!(status(&reply), 401);
    }
    let mut client = server.tcp().await;
    client.send(&register(&client, 1, None)).await;
    assert_eq!(
        status(&client.response().await),
        403,
        "blocked before any challenge"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_user_without_an_nt_hash_is_told_to_set_a_password_and_cannot_use_ntlm() {
    // A password set before perch stored NT hashes: Digest verifiers only.
    let server = TestServer::start_seeded(
        |_| {},
        |store| {
            let mut credentials =
                perch::core::credentials::Credentials::derive("bob@example.test", "bob-pw");
            credentials.nt_hash = None;
            perch::core::ports::wait(store.update_user(
                "bob@example.test",
                perch::core::ports::UserChange {
                    display_name: None,
                    enabled: None,
                    credentials: Some(credentials),
                    unlocked_at: None,
                },
            ))
            .unwrap();
        },
    )
    .await;
    let listing = std::process::Command::new(env!("CARGO_BIN_EXE_perch"))
        .args(["admin", "--data"])
        .arg(&server.data_dir)
        .args(["user", "list"])
        .env("PERCH_DOMAIN", DOMAIN)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let bob = listing
        .lines()
        .find(|l| l.contains("bob@example.test"))
        .unwrap();
    assert!(bob.contains("needs a new password for: ntlm"), "{bob}");
    let alice = listing
        .lines()
        .find(|l| l.contains("alice@example.test"))
        .unwrap();
    assert!(!alice.contains("needs a new password"), "{alice}");

    let mut client = server.tcp().await;
    client.user = "bob".into();
    let (reply, _) = sign_in(&mut client, ("bob", "EXAMPLE"), "bob-pw").await;
    assert_eq!(status(&reply), 401);
    server.stop().await;
}

#[tokio::test]
async fn a_new_handshake_replaces_the_association_and_an_expired_one_ends_the_registration() {
    let server = TestServer::start(|c| c.auth.ntlm_association_lifetime_secs = 2).await;
    let mut client = server.tcp().await;
    let (_, old) = sign_in(&mut client, ("alice", ""), "alice-pw").await;
    let mut old = old.unwrap();
    // SIPE re-authenticates on the same connection: an unsigned REGISTER, a new handshake.
    let (reply, new) = sign_in_from(&mut client, ("alice", ""), "alice-pw", 10).await;
    assert_eq!(status(&reply), 200);
    let mut new = new.unwrap();
    client
        .send(&signed(options(&client, 1), Some(&mut old)))
        .await;
    assert_eq!(
        status(&client.response().await),
        403,
        "the old association is gone"
    );
    client
        .send(&signed(options(&client, 2), Some(&mut new)))
        .await;
    let reply = client.response().await;
    assert_eq!(status(&reply), 200);
    new.verify(&reply).unwrap();
    // Past its lifetime the association ends, and with it the registration and connection.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(client.closed_by_server().await);
    server.stop().await;
}

/// A client that shows no sign of speaking Microsoft's dialect is offered Digest alone:
/// PJSIP, for one, drops a whole 401 whose NTLM challenge it cannot parse.
#[tokio::test]
async fn only_microsoft_style_clients_are_offered_ntlm() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.tcp().await;
    client
        .send(&client.register_request("plain", 1, None))
        .await;
    let reply = client.response().await;
    assert_eq!(status(&reply), 401);
    assert!(
        reply
            .headers
            .get_all("WWW-Authenticate")
            .all(|v| v.starts_with("Digest ")),
        "{reply:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_scheme_perch_does_not_offer_gets_a_clear_refusal() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.tcp().await;
    let kerberos = r#"Kerberos qop="auth", realm="SIP Communications Service", targetname="sip/example.test", gssapi-data="YII=""#;
    client.send(&register(&client, 1, Some(kerberos))).await;
    let reply = client.response().await;
    assert_eq!(status(&reply), 403);
    let warning = reply.headers.get("Warning").unwrap();
    assert!(
        warning.contains("'Kerberos' is not offered here; use NTLM or Digest"),
        "{warning}"
    );

    // With NTLM turned off, only Digest is offered and named.
    let server_without = TestServer::start(|c| c.auth.ntlm = false).await;
    let mut client = server_without.tcp().await;
    client.send(&register(&client, 1, None)).await;
    let first = client.response().await;
    assert!(
        first
            .headers
            .get_all("WWW-Authenticate")
            .all(|v| v.starts_with("Digest "))
    );
    client
        .send(&register(
            &client,
            2,
            Some(r#"NTLM qop="auth", gssapi-data="""#),
        ))
        .await;
    let reply = client.response().await;
    assert_eq!(status(&reply), 403);
    assert!(reply.headers.get("Warning").unwrap().contains("use Digest"));
    server.stop().await;
    server_without.stop().await;
}
