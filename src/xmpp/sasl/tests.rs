use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::*;
use crate::core::credentials::tests::{RFC5802, RFC7677, Vector, client_proof};
use crate::core::credentials::{DigestHa1, ScramHash, ScramVerifier};

const DOMAIN: &str = "example.test";

fn b64(text: &str) -> Vec<u8> {
    BASE64.decode(text).unwrap()
}

fn failure(step: Step) -> SaslFailure {
    match step {
        Step::Failure(failure) => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn challenge(step: Step) -> String {
    match step {
        Step::Challenge(bytes) => String::from_utf8(bytes).unwrap(),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// server-first's attributes: (nonce, salt, iterations).
fn server_first_parts(server_first: &str) -> (String, Vec<u8>, u32) {
    let parts: Vec<&str> = server_first.split(',').collect();
    assert_eq!(parts.len(), 3, "{server_first}");
    (
        parts[0].strip_prefix("r=").unwrap().to_owned(),
        b64(parts[1].strip_prefix("s=").unwrap()),
        parts[2].strip_prefix("i=").unwrap().parse().unwrap(),
    )
}

/// Replays an RFC example through the exchange with the example's server nonce, byte for
/// byte: server-first as in the RFC, and v= the RFC's ServerSignature.
fn replay(vector: &Vector, mechanism: Mechanism) {
    let client_nonce = vector.client_first_bare.split_once(",r=").unwrap().1;
    let (combined, _, _) = server_first_parts(vector.server_first);
    let server_nonce = combined.strip_prefix(client_nonce).unwrap();
    let credentials = Credentials {
        scram_sha1: Some(
            ScramVerifier::new(ScramHash::Sha1, "pencil", &b64(vector.salt), 4096).unwrap(),
        ),
        scram_sha256: Some(
            ScramVerifier::new(ScramHash::Sha256, "pencil", &b64(vector.salt), 4096).unwrap(),
        ),
        ..Credentials::default()
    };

    let client_first = format!("n,,{}", vector.client_first_bare);
    let (mut exchange, step) = Exchange::start_with_nonce(
        DOMAIN,
        mechanism,
        Some(client_first.as_bytes()),
        false,
        server_nonce,
    );
    assert_eq!(
        step,
        Step::NeedUser {
            authcid: "user@example.test".into()
        }
    );
    let server_first = challenge(exchange.user(Some(&credentials), true));
    assert_eq!(server_first, vector.server_first);

    let client_final = format!("{},p={}", vector.client_final_without_proof, vector.proof);
    assert_eq!(
        exchange.respond(client_final.as_bytes()),
        Step::Success {
            user: "user@example.test".into(),
            additional_data: Some(format!("v={}", vector.server_signature).into_bytes()),
        }
    );
    // Over: nothing more is taken.
    assert!(matches!(
        failure(exchange.respond(client_final.as_bytes())),
        SaslFailure::MalformedRequest(_)
    ));
}

#[test]
fn scram_sha256_rfc7677_example_byte_for_byte() {
    replay(&RFC7677, Mechanism::ScramSha256);
}

#[test]
fn scram_sha1_rfc5802_example_byte_for_byte() {
    replay(&RFC5802, Mechanism::ScramSha1);
}

/// A SCRAM client run to the end: the final step and the server-first seen.
struct Run {
    server_first: String,
    outcome: Step,
}

fn scram(
    mechanism: Mechanism,
    client_first: &str,
    password: &str,
    credentials: Option<&Credentials>,
    enabled: bool,
) -> Run {
    let hash = mechanism.scram_hash().unwrap();
    let (mut exchange, step) =
        Exchange::start(DOMAIN, mechanism, Some(client_first.as_bytes()), false);
    assert!(matches!(step, Step::NeedUser { .. }), "{step:?}");
    let server_first = challenge(exchange.user(credentials, enabled));
    let (nonce, salt, iterations) = server_first_parts(&server_first);
    let (gs2, bare) = client_first.split_at(client_first.find("n=").unwrap());
    let without_proof = format!("c={},r={nonce}", BASE64.encode(gs2));
    let auth = format!("{bare},{server_first},{without_proof}");
    let proof = client_proof(hash, password, &salt, iterations, auth.as_bytes());
    let outcome =
        exchange.respond(format!("{without_proof},p={}", BASE64.encode(proof)).as_bytes());
    Run {
        server_first,
        outcome,
    }
}

fn alice() -> Credentials {
    Credentials::derive("alice@example.test", "right")
}

#[test]
fn scram_signs_in_and_proves_the_server() {
    for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha1] {
        let credentials = alice();
        let run = scram(
            mechanism,
            "n,,n=alice,r=abc",
            "right",
            Some(&credentials),
            true,
        );
        let Step::Success {
            user,
            additional_data: Some(data),
        } = run.outcome
        else {
            panic!("{mechanism}: {:?}", run.outcome);
        };
        assert_eq!(user, "alice@example.test");
        let hash = mechanism.scram_hash().unwrap();
        let data = String::from_utf8(data).unwrap();
        assert_eq!(
            b64(data.strip_prefix("v=").unwrap()).len(),
            hash.output_len()
        );
        // The server nonce: 24 random bytes after the client's.
        let (nonce, _, _) = server_first_parts(&run.server_first);
        let server_nonce = nonce.strip_prefix("abc").unwrap();
        assert_eq!(b64(server_nonce).len(), NONCE_BYTES);
    }
}

#[test]
fn a_wrong_password_is_not_authorized() {
    let credentials = alice();
    for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha1] {
        let run = scram(
            mechanism,
            "n,,n=alice,r=abc",
            "wrong",
            Some(&credentials),
            true,
        );
        assert_eq!(failure(run.outcome), SaslFailure::NotAuthorized);
    }
}

/// The shape of a server-first: its attributes with the nonce's and salt's lengths.
fn shape(server_first: &str) -> (usize, usize, u32) {
    let (nonce, salt, iterations) = server_first_parts(server_first);
    (nonce.len(), salt.len(), iterations)
}

#[test]
fn an_unknown_user_looks_like_a_known_one_and_fails_the_same() {
    let credentials = alice();
    let known = scram(
        Mechanism::ScramSha256,
        "n,,n=alice,r=abc",
        "wrong",
        Some(&credentials),
        true,
    );
    let unknown = scram(
        Mechanism::ScramSha256,
        "n,,n=mallory,r=abc",
        "wrong",
        None,
        false,
    );
    assert_eq!(shape(&known.server_first), shape(&unknown.server_first));
    assert_eq!(failure(unknown.outcome.clone()), failure(known.outcome));
    assert_eq!(failure(unknown.outcome).condition(), "not-authorized");

    // Its salt is the same on every try, as a real user's is, and differs per name and
    // per mechanism.
    let salt = |mechanism, first| {
        server_first_parts(&scram(mechanism, first, "x", None, false).server_first).1
    };
    let mallory = salt(Mechanism::ScramSha256, "n,,n=mallory,r=abc");
    assert_eq!(mallory, salt(Mechanism::ScramSha256, "n,,n=Mallory,r=xyz"));
    assert_ne!(mallory, salt(Mechanism::ScramSha256, "n,,n=trudy,r=abc"));
    assert_ne!(mallory, salt(Mechanism::ScramSha1, "n,,n=mallory,r=abc"));

    // A user without a password is no different.
    let none = scram(Mechanism::ScramSha256, "n,,n=bot,r=abc", "x", None, true);
    assert_eq!(failure(none.outcome), SaslFailure::NotAuthorized);
}

#[test]
fn a_disabled_user_is_told_only_after_proving_the_password() {
    let credentials = alice();
    for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha1] {
        let right = scram(
            mechanism,
            "n,,n=alice,r=abc",
            "right",
            Some(&credentials),
            false,
        );
        assert_eq!(failure(right.outcome), SaslFailure::AccountDisabled);
        let wrong = scram(
            mechanism,
            "n,,n=alice,r=abc",
            "wrong",
            Some(&credentials),
            false,
        );
        assert_eq!(failure(wrong.outcome), SaslFailure::NotAuthorized);
    }
    let right = plain(b"\0alice\0right", true, Some(&credentials), false);
    assert_eq!(failure(right), SaslFailure::AccountDisabled);
    let wrong = plain_run(b"\0alice\0wrong", Some(&credentials), false);
    assert_eq!(failure(wrong), SaslFailure::NotAuthorized);
}

#[test]
fn a_user_without_the_verifier_is_told_which_one() {
    // A user from before SCRAM: Digest only.
    let digest_only = Credentials {
        digest: Some(DigestHa1::derive("alice@example.test", "right")),
        ..Credentials::default()
    };
    let run = scram(
        Mechanism::ScramSha256,
        "n,,n=alice,r=abc",
        "right",
        Some(&digest_only),
        true,
    );
    // Same challenge shape as anyone's.
    assert_eq!(shape(&run.server_first), (3 + 32, 16, 4096));
    let expired = failure(run.outcome);
    assert_eq!(
        expired,
        SaslFailure::CredentialsExpired(Mechanism::ScramSha256)
    );
    assert_eq!(expired.condition(), "credentials-expired");
    assert!(
        expired.text().contains("SCRAM-SHA-256"),
        "{}",
        expired.text()
    );
    assert!(
        expired.text().contains("password is next set"),
        "{}",
        expired.text()
    );

    // SCRAM-SHA-1 only: SHA-256 is missing, SHA-1 works.
    let sha1_only = Credentials {
        scram_sha1: alice().scram_sha1,
        ..Credentials::default()
    };
    let run = scram(
        Mechanism::ScramSha256,
        "n,,n=alice,r=abc",
        "right",
        Some(&sha1_only),
        true,
    );
    assert_eq!(
        failure(run.outcome),
        SaslFailure::CredentialsExpired(Mechanism::ScramSha256)
    );
    let run = scram(
        Mechanism::ScramSha1,
        "n,,n=alice,r=abc",
        "right",
        Some(&sha1_only),
        true,
    );
    assert!(
        matches!(run.outcome, Step::Success { .. }),
        "{:?}",
        run.outcome
    );

    // PLAIN checks the Digest verifier; with only an NT hash it has nothing to check.
    assert!(matches!(
        plain_run(b"\0alice\0right", Some(&digest_only), true),
        Step::Success { .. }
    ));
    let nt_only = Credentials {
        nt_hash: alice().nt_hash,
        ..Credentials::default()
    };
    assert_eq!(
        failure(plain_run(b"\0alice\0right", Some(&nt_only), true)),
        SaslFailure::CredentialsExpired(Mechanism::Plain)
    );
}

fn start(mechanism: Mechanism, message: &[u8]) -> Step {
    Exchange::start(DOMAIN, mechanism, Some(message), true).1
}

#[test]
fn channel_binding_is_refused_and_the_y_flag_accepted() {
    let refused = failure(start(
        Mechanism::ScramSha256,
        b"p=tls-exporter,,n=alice,r=abc",
    ));
    assert!(matches!(refused, SaslFailure::MalformedRequest(_)));
    assert_eq!(refused.condition(), "malformed-request");
    assert!(
        refused.text().contains("channel binding"),
        "{}",
        refused.text()
    );

    // y: the client could bind but sees no -PLUS offered; its c= repeats y,,.
    let credentials = alice();
    let run = scram(
        Mechanism::ScramSha256,
        "y,,n=alice,r=abc",
        "right",
        Some(&credentials),
        true,
    );
    assert!(
        matches!(run.outcome, Step::Success { .. }),
        "{:?}",
        run.outcome
    );

    for bad in [
        &b"x,,n=alice,r=abc"[..],
        b"n",
        b"n,n=alice,r=abc",
        b"n,,r=abc",
        b"n,,n=alice",
    ] {
        assert!(
            matches!(
                failure(start(Mechanism::ScramSha256, bad)),
                SaslFailure::MalformedRequest(_)
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// Runs to client-final and answers with `final_message(nonce, gs2 base64)`.
fn scram_final(final_message: impl Fn(&str) -> String) -> Step {
    let credentials = alice();
    let (mut exchange, _) = Exchange::start(
        DOMAIN,
        Mechanism::ScramSha256,
        Some(b"n,,n=alice,r=abc"),
        false,
    );
    let server_first = challenge(exchange.user(Some(&credentials), true));
    let (nonce, _, _) = server_first_parts(&server_first);
    exchange.respond(final_message(&nonce).as_bytes())
}

const PROOF: &str = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

#[test]
fn a_nonce_other_than_the_exchanges_is_refused() {
    let others: [fn(&str) -> String; 3] = [
        |n| format!("{n}x"),
        |_| "abc".to_owned(),
        |n| n[..n.len() - 1].to_owned(),
    ];
    for nonce in others {
        let step = scram_final(|n| format!("c=biws,r={},p={PROOF}", nonce(n)));
        assert_eq!(
            failure(step),
            SaslFailure::MalformedRequest("r= is not this exchange's nonce")
        );
    }
    // c= must be the GS2 header the client sent.
    let step = scram_final(|n| format!("c=eSws,r={n},p={PROOF}"));
    assert!(matches!(failure(step), SaslFailure::MalformedRequest(_)));
}

#[test]
fn bad_base64_is_incorrect_encoding() {
    let step = scram_final(|n| format!("c=biws!,r={n},p={PROOF}"));
    assert_eq!(failure(step), SaslFailure::IncorrectEncoding("c="));
    let step = scram_final(|n| format!("c=biws,r={n},p=dHzb*apW"));
    assert_eq!(failure(step), SaslFailure::IncorrectEncoding("p="));
    let step = scram_final(|n| format!("c=biws,r={n},p=dHzbZapWIk4jUhN"));
    assert_eq!(failure(step), SaslFailure::IncorrectEncoding("p="));

    for bad in ["bi ws", "biws=", "b!ws", "YQ"] {
        let error = decode_payload(bad).unwrap_err();
        assert_eq!(error.condition(), "incorrect-encoding", "{bad}");
    }
    assert_eq!(decode_payload("=").unwrap(), b"");
    assert_eq!(decode_payload("").unwrap(), b"");
    assert_eq!(decode_payload("biws").unwrap(), b"n,,");
}

#[test]
fn a_proof_of_the_wrong_length_fails_as_a_wrong_password() {
    let step = scram_final(|n| format!("c=biws,r={n},p=AAAA"));
    assert_eq!(failure(step), SaslFailure::NotAuthorized);
    let step = scram_final(|n| format!("c=biws,r={n}"));
    assert!(matches!(failure(step), SaslFailure::MalformedRequest(_)));
}

#[test]
fn oversized_messages_are_refused() {
    let long_nonce = "a".repeat(MAX_MESSAGE_BYTES);
    let first = format!("n,,n=alice,r={long_nonce}");
    assert_eq!(
        failure(start(Mechanism::ScramSha256, first.as_bytes())),
        SaslFailure::MalformedRequest("a message over 4 KiB")
    );
    // Just at the bound is fine.
    let fits = format!("n,,n=alice,r={}", "a".repeat(MAX_MESSAGE_BYTES - 13));
    assert_eq!(fits.len(), MAX_MESSAGE_BYTES);
    assert!(matches!(
        start(Mechanism::ScramSha256, fits.as_bytes()),
        Step::NeedUser { .. }
    ));

    let step = scram_final(|n| {
        format!(
            "c=biws,r={n},{},p={PROOF}",
            "x=".repeat(MAX_MESSAGE_BYTES / 2)
        )
    });
    assert_eq!(
        failure(step),
        SaslFailure::MalformedRequest("a message over 4 KiB")
    );

    let mut password = b"\0alice\0".to_vec();
    password.resize(MAX_MESSAGE_BYTES + 1, b'p');
    assert_eq!(
        failure(start(Mechanism::Plain, &password)),
        SaslFailure::MalformedRequest("a message over 4 KiB")
    );

    // The base64 text: up to 4 KiB decoded.
    assert!(decode_payload(&BASE64.encode([0u8; MAX_MESSAGE_BYTES])).is_ok());
    assert_eq!(
        decode_payload(&BASE64.encode([0u8; MAX_MESSAGE_BYTES + 1])).unwrap_err(),
        SaslFailure::MalformedRequest("a message over 4 KiB")
    );

    assert_eq!(
        decode_payload(&"A".repeat(MAX_PAYLOAD_CHARS + 4)).unwrap_err(),
        SaslFailure::MalformedRequest("a message over 4 KiB")
    );

    // Names: 256 bytes at most.
    let name = "a".repeat(MAX_AUTHCID_BYTES + 1);
    let step = start(
        Mechanism::ScramSha256,
        format!("n,,n={name},r=abc").as_bytes(),
    );
    assert!(matches!(failure(step), SaslFailure::MalformedRequest(_)));
    // 250 bytes of localpart plus the domain is over the bound too.
    let name = "a".repeat(250);
    let step = start(
        Mechanism::ScramSha256,
        format!("n,,n={name},r=abc").as_bytes(),
    );
    assert!(matches!(failure(step), SaslFailure::MalformedRequest(_)));
}

fn plain(message: &[u8], tls: bool, credentials: Option<&Credentials>, enabled: bool) -> Step {
    let (mut exchange, step) = Exchange::start(DOMAIN, Mechanism::Plain, Some(message), tls);
    match step {
        Step::NeedUser { .. } => exchange.user(credentials, enabled),
        other => other,
    }
}

fn plain_run(message: &[u8], credentials: Option<&Credentials>, enabled: bool) -> Step {
    plain(message, true, credentials, enabled)
}

#[test]
fn plain_over_tls_only() {
    let credentials = alice();
    assert_eq!(
        plain(b"\0alice\0right", true, Some(&credentials), true),
        Step::Success {
            user: "alice@example.test".into(),
            additional_data: None
        }
    );
    assert_eq!(
        failure(plain_run(b"\0alice\0wrong", Some(&credentials), true)),
        SaslFailure::NotAuthorized
    );
    assert_eq!(
        failure(plain_run(b"\0mallory\0right", None, false)),
        SaslFailure::NotAuthorized
    );

    // Without TLS the password is not even read.
    let refused = failure(plain(b"\0alice\0right", false, Some(&credentials), true));
    assert_eq!(refused, SaslFailure::EncryptionRequired);
    assert_eq!(refused.condition(), "encryption-required");
    let (_, step) = Exchange::start(DOMAIN, Mechanism::Plain, None, false);
    assert_eq!(failure(step), SaslFailure::EncryptionRequired);

    assert_eq!(
        Mechanism::offered(true),
        [
            Mechanism::ScramSha256,
            Mechanism::ScramSha1,
            Mechanism::Plain
        ]
    );
    assert_eq!(
        Mechanism::offered(false),
        [Mechanism::ScramSha256, Mechanism::ScramSha1]
    );

    for bad in [
        &b"alice\0right"[..],
        b"\0alice\0",
        b"\0alice\0right\0",
        b"\0\xff\0right",
        b"",
    ] {
        assert!(
            matches!(
                failure(plain_run(bad, Some(&credentials), true)),
                SaslFailure::MalformedRequest(_)
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn an_authzid_other_than_the_user_is_refused() {
    let credentials = alice();
    for first in [
        "n,a=bob,n=alice,r=abc",
        "n,a=bob@example.test,n=alice,r=abc",
        "n,a=,n=alice,r=abc",
    ] {
        assert_eq!(
            failure(start(Mechanism::ScramSha256, first.as_bytes())),
            SaslFailure::InvalidAuthzid,
            "{first}"
        );
    }
    assert_eq!(
        failure(plain_run(b"bob\0alice\0right", Some(&credentials), true)),
        SaslFailure::InvalidAuthzid
    );
    assert_eq!(SaslFailure::InvalidAuthzid.condition(), "invalid-authzid");

    // The user themselves, in either form, is fine; the GS2 header with it is what c= repeats.
    for first in [
        "n,a=alice,n=alice,r=abc",
        "n,a=Alice@Example.Test,n=alice,r=abc",
    ] {
        let run = scram(
            Mechanism::ScramSha256,
            first,
            "right",
            Some(&credentials),
            true,
        );
        assert!(
            matches!(run.outcome, Step::Success { .. }),
            "{first}: {:?}",
            run.outcome
        );
    }
    assert!(matches!(
        plain_run(
            b"alice@example.test\0alice\0right",
            Some(&credentials),
            true
        ),
        Step::Success { .. }
    ));
}

#[test]
fn names_are_localparts_or_bare_jids_of_this_domain() {
    let authcid = |first: &str| match start(Mechanism::ScramSha256, first.as_bytes()) {
        Step::NeedUser { authcid } => Ok(authcid),
        other => Err(failure(other)),
    };
    assert_eq!(authcid("n,,n=Alice,r=abc").unwrap(), "alice@example.test");
    assert_eq!(
        authcid("n,,n=alice@EXAMPLE.test,r=abc").unwrap(),
        "alice@example.test"
    );
    assert_eq!(
        authcid("n,,n=a=2Cb=3Dc,r=abc").unwrap(),
        "a,b=c@example.test"
    );
    assert_eq!(
        authcid("n,,n=alice@other.test,r=abc"),
        Err(SaslFailure::ForeignUser)
    );
    for bad in [
        "n,,n=a=2,r=abc",
        "n,,n=a=41,r=abc",
        "n,,n=a=,r=abc",
        "n,,n=,r=abc",
        "n,,n=a b,r=abc",
        "n,,n=sip:alice,r=abc",
        "n,,n=al<ice,r=abc",
    ] {
        assert!(
            matches!(authcid(bad), Err(SaslFailure::MalformedRequest(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        authcid("n,,m=x,n=alice,r=abc"),
        Err(SaslFailure::MalformedRequest(_))
    ));
    assert!(matches!(
        authcid("n,,n=alice,r=a b"),
        Err(SaslFailure::MalformedRequest(_))
    ));
    // Extensions after the nonce are ignored (RFC 5802 §5.1).
    assert_eq!(
        authcid("n,,n=alice,r=abc,x=1").unwrap(),
        "alice@example.test"
    );
}

#[test]
fn the_first_message_may_come_after_an_empty_challenge() {
    let credentials = alice();
    let (mut exchange, step) = Exchange::start(DOMAIN, Mechanism::ScramSha1, None, false);
    assert_eq!(step, Step::Challenge(Vec::new()));
    assert_eq!(
        exchange.respond(b"n,,n=alice,r=abc"),
        Step::NeedUser {
            authcid: "alice@example.test".into()
        }
    );
    assert_eq!(exchange.authcid(), Some("alice@example.test"));
    assert!(challenge(exchange.user(Some(&credentials), true)).starts_with("r=abc"));

    let (mut exchange, _) = Exchange::start(DOMAIN, Mechanism::Plain, None, true);
    assert!(matches!(
        exchange.respond(b"\0alice\0right"),
        Step::NeedUser { .. }
    ));
    assert!(matches!(
        exchange.user(Some(&credentials), true),
        Step::Success { .. }
    ));
}

#[test]
fn out_of_turn_calls_end_the_exchange() {
    let credentials = alice();
    // A response while the user is being looked up is the client's fault.
    let (mut exchange, _) = Exchange::start(
        DOMAIN,
        Mechanism::ScramSha256,
        Some(b"n,,n=alice,r=abc"),
        false,
    );
    assert!(matches!(
        failure(exchange.respond(b"c=biws")),
        SaslFailure::MalformedRequest(_)
    ));
    // A lookup nobody asked for is the server's.
    let (mut exchange, _) = Exchange::start(DOMAIN, Mechanism::ScramSha256, None, false);
    assert_eq!(
        failure(exchange.user(Some(&credentials), true)).condition(),
        "temporary-auth-failure"
    );
    let (mut exchange, _) = Exchange::start(DOMAIN, Mechanism::ScramSha256, None, false);
    assert_eq!(failure(exchange.abort()), SaslFailure::Aborted);
    assert!(matches!(
        failure(exchange.respond(b"n,,n=alice,r=abc")),
        SaslFailure::MalformedRequest(_)
    ));
    // Debug shows no password.
    let (exchange, _) = Exchange::start(DOMAIN, Mechanism::Plain, Some(b"\0alice\0s3cret"), true);
    let debug = format!("{exchange:?}");
    assert!(
        !debug.contains("s3cret") && debug.contains("lookup"),
        "{debug}"
    );
}

#[test]
fn mechanisms_and_conditions_have_their_rfc_names() {
    for mechanism in Mechanism::offered(true) {
        assert_eq!(Mechanism::from_name(mechanism.name()), Ok(mechanism));
    }
    assert_eq!(Mechanism::ScramSha256.metric(), "scram-sha-256");
    assert_eq!(Mechanism::ScramSha1.metric(), "scram-sha-1");
    assert_eq!(Mechanism::Plain.metric(), "plain");
    for unknown in ["SCRAM-SHA-256-PLUS", "scram-sha-256", "DIGEST-MD5", ""] {
        let error = Mechanism::from_name(unknown).unwrap_err();
        assert_eq!(error.condition(), "invalid-mechanism", "{unknown}");
    }
    let conditions = [
        (SaslFailure::Aborted, "aborted"),
        (SaslFailure::AccountDisabled, "account-disabled"),
        (
            SaslFailure::CredentialsExpired(Mechanism::ScramSha1),
            "credentials-expired",
        ),
        (SaslFailure::EncryptionRequired, "encryption-required"),
        (SaslFailure::IncorrectEncoding("x"), "incorrect-encoding"),
        (SaslFailure::InvalidAuthzid, "invalid-authzid"),
        (SaslFailure::InvalidMechanism, "invalid-mechanism"),
        (SaslFailure::MalformedRequest("x"), "malformed-request"),
        (SaslFailure::MechanismTooWeak, "mechanism-too-weak"),
        (SaslFailure::NotAuthorized, "not-authorized"),
        (SaslFailure::ForeignUser, "not-authorized"),
        (SaslFailure::Throttled, "not-authorized"),
        (
            SaslFailure::TemporaryAuthFailure("x"),
            "temporary-auth-failure",
        ),
    ];
    for (failure, condition) in conditions {
        assert_eq!(failure.condition(), condition);
        assert!(!failure.text().is_empty());
    }
}

#[test]
fn outcomes_count_in_the_shared_throttle() {
    // Two failures of a user from an address, then that pair waits.
    let throttle = FailureThrottle::new(Duration::from_secs(60), 100, 2);
    let peer: IpAddr = "192.0.2.7".parse().unwrap();
    let now = Instant::now();
    let credentials = alice();
    let sign_in = |password: &str| {
        let (mut exchange, step) = Exchange::start(
            DOMAIN,
            Mechanism::Plain,
            Some(format!("\0alice\0{password}").as_bytes()),
            true,
        );
        assert!(matches!(step, Step::NeedUser { .. }));
        if let Some(refused) = admit(&throttle, peer, &mut exchange, now) {
            record(&throttle, peer, &exchange, &refused, now);
            return refused;
        }
        let done = exchange.user(Some(&credentials), true);
        record(&throttle, peer, &exchange, &done, now);
        done
    };
    assert!(matches!(sign_in("right"), Step::Success { .. }));
    assert_eq!(failure(sign_in("wrong")), SaslFailure::NotAuthorized);
    assert_eq!(failure(sign_in("wrong")), SaslFailure::NotAuthorized);
    assert_eq!(failure(sign_in("right")), SaslFailure::Throttled);
    assert!(throttle.is_blocked(peer, Some("alice@example.test"), now));
    assert!(!throttle.is_blocked(peer, Some("bob@example.test"), now));
    // Once the wait is over, a success clears it.
    let later = now + Duration::from_secs(2);
    let (mut exchange, _) =
        Exchange::start(DOMAIN, Mechanism::Plain, Some(b"\0alice\0right"), true);
    assert!(admit(&throttle, peer, &mut exchange, later).is_none());
    let done = exchange.user(Some(&credentials), true);
    record(&throttle, peer, &exchange, &done, later);
    assert!(!throttle.is_blocked(peer, Some("alice@example.test"), later));

    // Malformed messages try no password and leave the throttle alone.
    let (exchange, step) = Exchange::start(
        DOMAIN,
        Mechanism::ScramSha256,
        Some(b"p=x,,n=alice,r=a"),
        true,
    );
    assert!(!failure(step.clone()).tried_credentials());
    for _ in 0..5 {
        record(&throttle, peer, &exchange, &step, later);
    }
    assert!(!throttle.is_blocked(peer, Some("alice@example.test"), later));
}

#[test]
fn sign_ins_are_counted_by_mechanism_and_outcome() {
    use crate::core::metrics::SignIn;
    let count = |mechanism, outcome| {
        metrics()
            .sign_ins
            .get_or_create(&SignIn { mechanism, outcome })
            .get()
    };
    let throttle = FailureThrottle::new(Duration::from_secs(60), 100, 100);
    let peer: IpAddr = "192.0.2.8".parse().unwrap();
    let before = count("scram-sha-1", "failure");
    let (exchange, step) = Exchange::start(DOMAIN, Mechanism::ScramSha1, Some(b"n,,n=,r=a"), false);
    record(&throttle, peer, &exchange, &step, Instant::now());
    // Counters are process-wide and tests run in parallel: they only move up.
    assert!(count("scram-sha-1", "failure") > before);
}
