//! NTLM (MS-NLMP) in its connectionless form, as SIP clients use it under MS-SIPAE: the
//! server's CHALLENGE, the client's AUTHENTICATE read with a bound on every field, NTLMv2
//! verification against the stored NT hash, the session keys, and message signatures.
//! Sans-I/O: bytes in, bytes and keys out. The client half (answering a CHALLENGE) is here
//! too, so that the tests and perch-load sign in through the same code they test against.
//!
//! NTLMv1 and LM are refused: only an NTLMv2 response proves the password to us.

use hmac::{Hmac, KeyInit as _, Mac as _};
use md5::{Digest as _, Md5};
use rc4::{Rc4, StreamCipher as _};

use crate::core::credentials::{NtHash, constant_time_eq};

/// NegotiateFlags (MS-NLMP §2.2.2.5).
pub mod flags {
    pub const UNICODE: u32 = 0x0000_0001;
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    pub const SIGN: u32 = 0x0000_0010;
    pub const SEAL: u32 = 0x0000_0020;
    pub const DATAGRAM: u32 = 0x0000_0040;
    pub const LM_KEY: u32 = 0x0000_0080;
    pub const NTLM: u32 = 0x0000_0200;
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
    pub const EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
    pub const IDENTIFY: u32 = 0x0010_0000;
    pub const TARGET_INFO: u32 = 0x0080_0000;
    pub const VERSION: u32 = 0x0200_0000;
    pub const NEGOTIATE_128: u32 = 0x2000_0000;
    pub const KEY_EXCH: u32 = 0x4000_0000;
    pub const NEGOTIATE_56: u32 = 0x8000_0000;
}

/// What perch offers in a CHALLENGE: everything SIPE insists on for connectionless NTLM
/// (it gives up unless all of UNICODE, NTLM, ALWAYS_SIGN, extended session security,
/// TARGET_INFO, SIGN, DATAGRAM, IDENTIFY and KEY_EXCH are there), 128-bit keys, no sealing.
pub const OFFERED: u32 = flags::UNICODE
    | flags::REQUEST_TARGET
    | flags::SIGN
    | flags::DATAGRAM
    | flags::NTLM
    | flags::ALWAYS_SIGN
    | flags::TARGET_TYPE_DOMAIN
    | flags::EXTENDED_SESSION_SECURITY
    | flags::IDENTIFY
    | flags::TARGET_INFO
    | flags::VERSION
    | flags::NEGOTIATE_128
    | flags::KEY_EXCH;

/// Flags an AUTHENTICATE must keep for perch to accept it: Unicode names, NTLM, and the
/// extended session security that NTLMv2 signing rests on.
pub const REQUIRED: u32 = flags::UNICODE | flags::NTLM | flags::EXTENDED_SESSION_SECURITY;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
const CHALLENGE_TYPE: u32 = 2;
const AUTHENTICATE_TYPE: u32 = 3;
/// The smallest AUTHENTICATE: the fixed part up to and including the flags.
const AUTHENTICATE_FIXED: usize = 64;
/// Bounds on what a client may send (bytes). Names are UTF-16LE: 256 characters each is
/// far beyond any real account, domain or host name.
pub const MAX_NAME_BYTES: usize = 512;
/// An NTLMv2 response: 16-byte proof, 28 bytes of fixed blob, the echoed TargetInfo (ours
/// is under 300 bytes) plus whatever AV pairs the client adds.
pub const MAX_NT_RESPONSE: usize = 2048;
const NT_PROOF_LEN: usize = 16;
/// Proof, the blob's fixed fields, and at least the end-of-list pair of the TargetInfo.
const MIN_NTLMV2_RESPONSE: usize = NT_PROOF_LEN + 28 + 4;
const MAX_LM_RESPONSE: usize = 24;
pub const MAX_MESSAGE: usize =
    AUTHENTICATE_FIXED + 24 + 3 * MAX_NAME_BYTES + MAX_LM_RESPONSE + MAX_NT_RESPONSE + 16;

/// Windows 10-style version block (MS-NLMP §2.2.2.10); informational only.
const VERSION: [u8; 8] = [10, 0, 0x63, 0x45, 0, 0, 0, 0x0f];

/// Why an NTLM message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    #[error("malformed NTLM message: {0}")]
    Malformed(&'static str),
    #[error("NTLMv1 and LM responses are not accepted")]
    NotVersion2,
    #[error("the NTLM negotiation lacks required flags ({0:#010x})")]
    MissingFlags(u32),
    #[error("the NTLM response does not prove the password")]
    BadProof,
}

/// The names a CHALLENGE announces in its TargetInfo (MS-NLMP §2.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetNames {
    /// NetBIOS domain, e.g. `EXAMPLE`; also the CHALLENGE's TargetName.
    pub netbios_domain: String,
    pub netbios_computer: String,
    /// DNS domain, e.g. `example.test`.
    pub dns_domain: String,
    /// The server's host name, e.g. `chat.example.test`.
    pub dns_computer: String,
}

/// A CHALLENGE perch sent and must remember until the AUTHENTICATE answering it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub server_challenge: [u8; 8],
    pub flags: u32,
    /// The encoded message (base64 of it goes into `gssapi-data`).
    pub message: Vec<u8>,
}

impl Challenge {
    /// A CHALLENGE with nonce `server_challenge`, stamped with `filetime` (100 ns ticks
    /// since 1601, see [`filetime`]).
    pub fn new(server_challenge: [u8; 8], names: &TargetNames, filetime: u64) -> Challenge {
        let target_name = utf16le(&names.netbios_domain);
        let mut info = Vec::with_capacity(256);
        for (id, value) in [
            (2u16, &names.netbios_domain),
            (1, &names.netbios_computer),
            (4, &names.dns_domain),
            (3, &names.dns_computer),
        ] {
            push_av(&mut info, id, &utf16le(value));
        }
        push_av(&mut info, 7, &filetime.to_le_bytes());
        push_av(&mut info, 0, &[]);

        let payload_start = 56;
        let mut message = Vec::with_capacity(payload_start + target_name.len() + info.len());
        message.extend_from_slice(SIGNATURE);
        message.extend_from_slice(&CHALLENGE_TYPE.to_le_bytes());
        push_field(&mut message, target_name.len(), payload_start);
        message.extend_from_slice(&OFFERED.to_le_bytes());
        message.extend_from_slice(&server_challenge);
        message.extend_from_slice(&[0; 8]);
        push_field(&mut message, info.len(), payload_start + target_name.len());
        message.extend_from_slice(&VERSION);
        message.extend_from_slice(&target_name);
        message.extend_from_slice(&info);
        Challenge {
            server_challenge,
            flags: OFFERED,
            message,
        }
    }

    /// Checks an AUTHENTICATE answering this challenge against the user's NT hash, using
    /// the user and domain names exactly as the client sent them (NTOWFv2 binds them).
    pub fn verify(
        &self,
        answer: &Authenticate,
        nt_hash: &NtHash,
    ) -> Result<SessionKeys, NtlmError> {
        let negotiated = answer.flags & self.flags;
        if negotiated & REQUIRED != REQUIRED {
            return Err(NtlmError::MissingFlags(REQUIRED & !negotiated));
        }
        if answer.nt_response.len() < MIN_NTLMV2_RESPONSE {
            return Err(NtlmError::NotVersion2);
        }
        let (proof, blob) = answer.nt_response.split_at(NT_PROOF_LEN);
        // RespType and HiRespType are both 1 in every NTLMv2 blob (MS-NLMP §2.2.2.7).
        if blob[0] != 1 || blob[1] != 1 {
            return Err(NtlmError::NotVersion2);
        }
        let key = response_key(nt_hash, &answer.user, &answer.domain);
        let expected = hmac_md5(&key, &[&self.server_challenge, blob]);
        if !constant_time_eq(&expected, proof) {
            return Err(NtlmError::BadProof);
        }
        let session_base_key = hmac_md5(&key, &[proof]);
        let exported = exported_session_key(negotiated, &session_base_key, &answer.session_key)?;
        Ok(SessionKeys::derive(negotiated, &exported))
    }
}

/// What a client's CHALLENGE parse yields: enough to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedChallenge {
    pub flags: u32,
    pub server_challenge: [u8; 8],
    pub target_info: Vec<u8>,
    /// MsvAvTimestamp from the TargetInfo, if the server sent one.
    pub timestamp: Option<u64>,
}

impl ReceivedChallenge {
    pub fn parse(message: &[u8]) -> Result<ReceivedChallenge, NtlmError> {
        check_header(message, CHALLENGE_TYPE, 48)?;
        let flags = u32_at(message, 20);
        let mut server_challenge = [0u8; 8];
        server_challenge.copy_from_slice(&message[24..32]);
        let target_info = field(message, 40, 1024)?.to_vec();
        let mut timestamp = None;
        let mut rest = target_info.as_slice();
        while rest.len() >= 4 {
            let id = u16::from_le_bytes([rest[0], rest[1]]);
            let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
            let value = rest
                .get(4..4 + len)
                .ok_or(NtlmError::Malformed("TargetInfo pair overruns the list"))?;
            match id {
                0 => break,
                7 if len == 8 => {
                    let mut ticks = [0u8; 8];
                    ticks.copy_from_slice(value);
                    timestamp = Some(u64::from_le_bytes(ticks));
                }
                _ => {}
            }
            rest = &rest[4 + len..];
        }
        Ok(ReceivedChallenge {
            flags,
            server_challenge,
            target_info,
            timestamp,
        })
    }
}

/// An AUTHENTICATE message (MS-NLMP §2.2.1.3), names decoded from UTF-16LE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    pub flags: u32,
    pub lm_response: Vec<u8>,
    pub nt_response: Vec<u8>,
    pub domain: String,
    pub user: String,
    pub workstation: String,
    /// EncryptedRandomSessionKey: 16 bytes with KEY_EXCH, else empty.
    pub session_key: Vec<u8>,
}

impl Authenticate {
    /// Reads an AUTHENTICATE. Every field must lie inside the message and within its bound.
    pub fn parse(message: &[u8]) -> Result<Authenticate, NtlmError> {
        if message.len() > MAX_MESSAGE {
            return Err(NtlmError::Malformed("message too long"));
        }
        check_header(message, AUTHENTICATE_TYPE, AUTHENTICATE_FIXED)?;
        let flags = u32_at(message, 60);
        if flags & flags::UNICODE == 0 {
            return Err(NtlmError::MissingFlags(flags::UNICODE));
        }
        let session_key = field(message, 52, 16)?.to_vec();
        if !(session_key.is_empty() || session_key.len() == 16) {
            return Err(NtlmError::Malformed("session key is not 16 bytes"));
        }
        Ok(Authenticate {
            flags,
            lm_response: field(message, 12, MAX_LM_RESPONSE)?.to_vec(),
            nt_response: field(message, 20, MAX_NT_RESPONSE)?.to_vec(),
            domain: utf16le_decode(field(message, 28, MAX_NAME_BYTES)?)?,
            user: utf16le_decode(field(message, 36, MAX_NAME_BYTES)?)?,
            workstation: utf16le_decode(field(message, 44, MAX_NAME_BYTES)?)?,
            session_key,
        })
    }

    /// Encodes the message (the client side), without a version block or MIC.
    pub fn encode(&self) -> Vec<u8> {
        let fields: [&[u8]; 6] = [
            &self.lm_response,
            &self.nt_response,
            &utf16le(&self.domain),
            &utf16le(&self.user),
            &utf16le(&self.workstation),
            &self.session_key,
        ];
        let mut message = Vec::with_capacity(MAX_MESSAGE);
        message.extend_from_slice(SIGNATURE);
        message.extend_from_slice(&AUTHENTICATE_TYPE.to_le_bytes());
        let mut offset = AUTHENTICATE_FIXED;
        for data in fields {
            push_field(&mut message, data.len(), offset);
            offset += data.len();
        }
        message.extend_from_slice(&self.flags.to_le_bytes());
        for data in fields {
            message.extend_from_slice(data);
        }
        message
    }
}

/// A client's identity for [`respond`].
#[derive(Debug, Clone, Copy)]
pub struct ClientIdentity<'a> {
    pub user: &'a str,
    pub domain: &'a str,
    pub workstation: &'a str,
    pub nt_hash: &'a NtHash,
}

/// The client's random inputs, given so that tests can fix them.
#[derive(Debug, Clone, Copy)]
pub struct ClientEntropy {
    pub client_challenge: [u8; 8],
    pub exported_session_key: [u8; 16],
    /// Used when the CHALLENGE carries no timestamp.
    pub filetime: u64,
}

/// Answers a CHALLENGE as a connectionless NTLMv2 client does (as SIPE does): the flags
/// are the server's, limited to what this client implements.
pub fn respond(
    challenge: &ReceivedChallenge,
    identity: &ClientIdentity<'_>,
    entropy: &ClientEntropy,
) -> Result<(Authenticate, SessionKeys), NtlmError> {
    let implemented = OFFERED | flags::NEGOTIATE_56;
    let flags = challenge.flags & implemented;
    if flags & REQUIRED != REQUIRED {
        return Err(NtlmError::MissingFlags(REQUIRED & !flags));
    }
    let key = response_key(identity.nt_hash, identity.user, identity.domain);
    let time = challenge.timestamp.unwrap_or(entropy.filetime);
    let mut blob = Vec::with_capacity(32 + challenge.target_info.len());
    blob.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    blob.extend_from_slice(&time.to_le_bytes());
    blob.extend_from_slice(&entropy.client_challenge);
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(&challenge.target_info);
    blob.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(&key, &[&challenge.server_challenge, &blob]);
    let session_base_key = hmac_md5(&key, &[&proof]);
    let mut lm_response = hmac_md5(
        &key,
        &[&challenge.server_challenge, &entropy.client_challenge],
    )
    .to_vec();
    lm_response.extend_from_slice(&entropy.client_challenge);
    let session_key = if flags & flags::KEY_EXCH != 0 {
        rc4(&session_base_key, &entropy.exported_session_key)
    } else {
        Vec::new()
    };
    let exported = if flags & flags::KEY_EXCH != 0 {
        entropy.exported_session_key
    } else {
        session_base_key
    };
    let mut nt_response = proof.to_vec();
    nt_response.extend_from_slice(&blob);
    let message = Authenticate {
        flags,
        lm_response,
        nt_response,
        domain: identity.domain.to_owned(),
        user: identity.user.to_owned(),
        workstation: identity.workstation.to_owned(),
        session_key,
    };
    Ok((message, SessionKeys::derive(flags, &exported)))
}

/// Which side's keys sign a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// The signing and sealing keys of an established NTLM session (MS-NLMP §3.4.5).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    pub flags: u32,
    client_sign: [u8; 16],
    server_sign: [u8; 16],
    client_seal: [u8; 16],
    server_seal: [u8; 16],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secrets: never in logs.
        write!(f, "SessionKeys {{ flags: {:#010x}, .. }}", self.flags)
    }
}

impl SessionKeys {
    fn derive(flags: u32, exported: &[u8; 16]) -> SessionKeys {
        let seal_len = if flags & flags::NEGOTIATE_128 != 0 {
            16
        } else if flags & flags::NEGOTIATE_56 != 0 {
            7
        } else {
            5
        };
        let key = |material: &[u8], magic: &[u8]| -> [u8; 16] {
            let mut md5 = Md5::new();
            md5.update(material);
            md5.update(magic);
            md5.finalize().into()
        };
        SessionKeys {
            flags,
            client_sign: key(exported, MAGIC_CLIENT_SIGN),
            server_sign: key(exported, MAGIC_SERVER_SIGN),
            client_seal: key(&exported[..seal_len], MAGIC_CLIENT_SEAL),
            server_seal: key(&exported[..seal_len], MAGIC_SERVER_SEAL),
        }
    }

    /// The 16-byte signature (MS-NLMP §3.4.4.2, extended session security) of `message`
    /// with sequence number `sequence`. Each signature starts a fresh RC4 state, as
    /// connectionless (DATAGRAM) NTLM does, so messages are signed independently.
    pub fn sign(&self, direction: Direction, sequence: u32, message: &[u8]) -> [u8; 16] {
        let (sign_key, seal_key) = match direction {
            Direction::ClientToServer => (&self.client_sign, &self.client_seal),
            Direction::ServerToClient => (&self.server_sign, &self.server_seal),
        };
        let sequence_bytes = sequence.to_le_bytes();
        let digest = hmac_md5(sign_key, &[&sequence_bytes, message]);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&digest[..8]);
        if self.flags & flags::KEY_EXCH != 0 {
            let handle_key: [u8; 16] = if self.flags & flags::DATAGRAM != 0 {
                let mut md5 = Md5::new();
                md5.update(seal_key);
                md5.update(sequence_bytes);
                md5.finalize().into()
            } else {
                *seal_key
            };
            let sealed = rc4(&handle_key, &checksum);
            checksum.copy_from_slice(&sealed);
        }
        let mut signature = [0u8; 16];
        signature[..4].copy_from_slice(&1u32.to_le_bytes());
        signature[4..12].copy_from_slice(&checksum);
        signature[12..].copy_from_slice(&sequence_bytes);
        signature
    }

    /// Whether `signature` is the one [`SessionKeys::sign`] gives (compared in constant time).
    pub fn verify(
        &self,
        direction: Direction,
        sequence: u32,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        constant_time_eq(&self.sign(direction, sequence, message), signature)
    }
}

const MAGIC_CLIENT_SIGN: &[u8] = b"session key to client-to-server signing key magic constant\0";
const MAGIC_SERVER_SIGN: &[u8] = b"session key to server-to-client signing key magic constant\0";
const MAGIC_CLIENT_SEAL: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const MAGIC_SERVER_SEAL: &[u8] = b"session key to server-to-client sealing key magic constant\0";

/// NTOWFv2 (MS-NLMP §3.3.2): HMAC_MD5(NT hash, UTF-16LE(UPPER(user) ‖ domain)).
pub fn response_key(nt_hash: &NtHash, user: &str, domain: &str) -> [u8; 16] {
    let identity = utf16le(&format!("{}{domain}", user.to_uppercase()));
    hmac_md5(&nt_hash.0, &[&identity])
}

/// Windows FILETIME for a Unix time in seconds: 100 ns ticks since 1601-01-01.
pub fn filetime(unix_seconds: u64) -> u64 {
    const EPOCH_DIFFERENCE: u64 = 11_644_473_600;
    unix_seconds
        .saturating_add(EPOCH_DIFFERENCE)
        .saturating_mul(10_000_000)
}

fn exported_session_key(
    negotiated: u32,
    session_base_key: &[u8; 16],
    encrypted: &[u8],
) -> Result<[u8; 16], NtlmError> {
    // In NTLMv2 the KeyExchangeKey is the SessionBaseKey itself.
    if negotiated & flags::KEY_EXCH == 0 {
        return Ok(*session_base_key);
    }
    if encrypted.len() != 16 {
        return Err(NtlmError::Malformed("KEY_EXCH without a session key"));
    }
    let mut exported = [0u8; 16];
    exported.copy_from_slice(&rc4(session_base_key, encrypted));
    Ok(exported)
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Md5>::new_from_slice(key) else {
        return [0; 16];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    // Our keys are 16 bytes, within RC4's 1..=256.
    if let Ok(mut cipher) = Rc4::new_from_slice(key) {
        cipher.apply_keystream(&mut out);
    }
    out
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn utf16le_decode(bytes: &[u8]) -> Result<String, NtlmError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(NtlmError::Malformed("odd-length UTF-16 name"));
    }
    let units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| NtlmError::Malformed("name is not valid UTF-16"))
}

fn push_av(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    // Our values are short names and a timestamp.
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(value);
}

/// A security buffer header: Len, MaxLen, Offset.
fn push_field(out: &mut Vec<u8>, len: usize, offset: usize) {
    let len = u16::try_from(len).unwrap_or(u16::MAX).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&len);
    out.extend_from_slice(&u32::try_from(offset).unwrap_or(u32::MAX).to_le_bytes());
}

fn check_header(message: &[u8], kind: u32, fixed: usize) -> Result<(), NtlmError> {
    if message.len() < fixed {
        return Err(NtlmError::Malformed("message too short"));
    }
    if &message[..8] != SIGNATURE {
        return Err(NtlmError::Malformed("no NTLMSSP signature"));
    }
    if u32_at(message, 8) != kind {
        return Err(NtlmError::Malformed("unexpected message type"));
    }
    Ok(())
}

/// Callers have checked that `at + 4` is within `message`.
fn u32_at(message: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([
        message[at],
        message[at + 1],
        message[at + 2],
        message[at + 3],
    ])
}

/// The payload a security buffer header at `at` points to, if it lies inside the message
/// and is at most `max` bytes.
fn field(message: &[u8], at: usize, max: usize) -> Result<&[u8], NtlmError> {
    let len = usize::from(u16::from_le_bytes([message[at], message[at + 1]]));
    let offset = u32_at(message, at + 4) as usize;
    if len == 0 {
        return Ok(&[]);
    }
    if len > max {
        return Err(NtlmError::Malformed("field longer than allowed"));
    }
    message
        .get(offset..offset.saturating_add(len))
        .ok_or(NtlmError::Malformed("field outside the message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        let clean: String = text.split_whitespace().collect();
        hex::decode(clean).unwrap()
    }

    /// MS-NLMP §4.2.4.3: the NTLMv2 AUTHENTICATE_MESSAGE for user "User", domain
    /// "Domain", password "Password", server challenge 0123456789abcdef, client challenge
    /// aa×8, time 0 and random session key 55×16.
    const SPEC_AUTHENTICATE: &str = "
        4e544c4d53535000 03000000 18001800 6c000000 54005400 84000000 0c000c00 48000000
        08000800 54000000 10001000 5c000000 10001000 d8000000 358288e2 0501280a0000000f
        44006f006d00610069006e00 5500730065007200 43004f004d0050005500540045005200
        86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa
        68cd0ab851e51c96aabc927bebef6a1c 0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa
        00000000 02000c0044006f006d00610069006e00 01000c00530065007200760065007200
        00000000 00000000
        c5dad2544fc9799094ce1ce90bc9d03e";
    const SPEC_SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

    fn spec_challenge() -> Challenge {
        Challenge {
            server_challenge: SPEC_SERVER_CHALLENGE,
            flags: 0xe28a_8233 | OFFERED,
            message: Vec::new(),
        }
    }

    #[test]
    fn response_key_is_ms_nlmp_ntowfv2() {
        let key = response_key(&NtHash::derive("Password"), "User", "Domain");
        assert_eq!(hex::encode(key), "0c868a403bfd7a93a3001ef22ef02e3f");
    }

    #[test]
    fn the_spec_authenticate_parses_and_verifies() {
        let message = Authenticate::parse(&unhex(SPEC_AUTHENTICATE)).unwrap();
        assert_eq!(message.user, "User");
        assert_eq!(message.domain, "Domain");
        assert_eq!(message.workstation, "COMPUTER");
        assert_eq!(message.flags, 0xe288_8235);
        let keys = spec_challenge()
            .verify(&message, &NtHash::derive("Password"))
            .unwrap();
        // §4.2.4.4: the keys derived from the random session key 55×16.
        assert_eq!(
            hex::encode(keys.client_sign),
            "4788dc861b4782f35d43fd98fe1a2d39"
        );
        assert_eq!(
            hex::encode(keys.client_seal),
            "59f600973cc4960a25480a7c196e4c58"
        );
    }

    #[test]
    fn a_wrong_password_or_altered_names_fail_the_proof() {
        let message = Authenticate::parse(&unhex(SPEC_AUTHENTICATE)).unwrap();
        let challenge = spec_challenge();
        assert_eq!(
            challenge.verify(&message, &NtHash::derive("password")),
            Err(NtlmError::BadProof)
        );
        let mut renamed = message.clone();
        renamed.user = "Admin".into();
        assert_eq!(
            challenge.verify(&renamed, &NtHash::derive("Password")),
            Err(NtlmError::BadProof)
        );
        // The proof binds the server challenge: a replay against a new one fails.
        let mut other = spec_challenge();
        other.server_challenge[0] ^= 1;
        assert_eq!(
            other.verify(&message, &NtHash::derive("Password")),
            Err(NtlmError::BadProof)
        );
    }

    #[test]
    fn ntlmv1_and_lm_are_refused() {
        let mut message = Authenticate::parse(&unhex(SPEC_AUTHENTICATE)).unwrap();
        message.nt_response.truncate(24);
        assert_eq!(
            spec_challenge().verify(&message, &NtHash::derive("Password")),
            Err(NtlmError::NotVersion2)
        );
        let mut no_ess = Authenticate::parse(&unhex(SPEC_AUTHENTICATE)).unwrap();
        no_ess.flags &= !flags::EXTENDED_SESSION_SECURITY;
        assert!(matches!(
            spec_challenge().verify(&no_ess, &NtHash::derive("Password")),
            Err(NtlmError::MissingFlags(_))
        ));
    }

    #[test]
    fn the_checksum_is_the_spec_hmac() {
        // §4.2.4.4: HMAC_MD5(SigningKey, SeqNum 0 ‖ "Plaintext")[0..7] = 7035285 1f2564309,
        // before any RC4 (so: no key exchange here).
        let keys = SessionKeys::derive(
            flags::EXTENDED_SESSION_SECURITY | flags::NEGOTIATE_128,
            &[0x55; 16],
        );
        let signature = keys.sign(Direction::ClientToServer, 0, &utf16le("Plaintext"));
        assert_eq!(hex::encode(&signature[..4]), "01000000");
        assert_eq!(hex::encode(&signature[4..12]), "70352851f2564309");
        assert_eq!(hex::encode(&signature[12..]), "00000000");
    }

    fn names() -> TargetNames {
        TargetNames {
            netbios_domain: "EXAMPLE".into(),
            netbios_computer: "CHAT".into(),
            dns_domain: "example.test".into(),
            dns_computer: "chat.example.test".into(),
        }
    }

    fn entropy() -> ClientEntropy {
        ClientEntropy {
            client_challenge: [7; 8],
            exported_session_key: [9; 16],
            filetime: filetime(1_700_000_000),
        }
    }

    #[test]
    fn a_client_answer_verifies_and_both_sides_agree_on_keys() {
        let challenge = Challenge::new([3; 8], &names(), filetime(1_800_000_000));
        let received = ReceivedChallenge::parse(&challenge.message).unwrap();
        assert_eq!(received.flags, OFFERED);
        assert_eq!(received.timestamp, Some(filetime(1_800_000_000)));
        let hash = NtHash::derive("alice-demo");
        let identity = ClientIdentity {
            user: "alice@example.test",
            domain: "",
            workstation: "HOST",
            nt_hash: &hash,
        };
        let (answer, client_keys) = respond(&received, &identity, &entropy()).unwrap();
        let parsed = Authenticate::parse(&answer.encode()).unwrap();
        assert_eq!(parsed, answer);
        let server_keys = challenge.verify(&parsed, &hash).unwrap();
        assert_eq!(server_keys, client_keys);

        let text = b"<NTLM><1234><1><realm>";
        let from_client = client_keys.sign(Direction::ClientToServer, 100, text);
        assert!(server_keys.verify(Direction::ClientToServer, 100, text, &from_client));
        assert!(!server_keys.verify(Direction::ServerToClient, 100, text, &from_client));
        assert!(!server_keys.verify(
            Direction::ClientToServer,
            100,
            b"<NTLM><1234><2><realm>",
            &from_client
        ));
        let from_server = server_keys.sign(Direction::ServerToClient, 100, text);
        assert_ne!(from_server, from_client);
        assert!(client_keys.verify(Direction::ServerToClient, 100, text, &from_server));

        let wrong = NtHash::derive("alice-demo ");
        assert_eq!(challenge.verify(&parsed, &wrong), Err(NtlmError::BadProof));
    }

    #[test]
    fn the_user_name_is_case_blind_in_ntowfv2_but_the_domain_is_not() {
        let hash = NtHash::derive("pw");
        assert_eq!(
            response_key(&hash, "Alice", "EXAMPLE"),
            response_key(&hash, "ALICE", "EXAMPLE")
        );
        assert_ne!(
            response_key(&hash, "alice", "EXAMPLE"),
            response_key(&hash, "alice", "example")
        );
    }

    #[test]
    fn fields_outside_the_message_or_over_their_bound_are_refused() {
        let good = unhex(SPEC_AUTHENTICATE);
        let mut outside = good.clone();
        outside[40..44].copy_from_slice(&0xffff_u32.to_le_bytes()); // user offset
        assert!(matches!(
            Authenticate::parse(&outside),
            Err(NtlmError::Malformed(_))
        ));
        let mut long = good.clone();
        long[36..38].copy_from_slice(&600u16.to_le_bytes()); // user length
        assert!(matches!(
            Authenticate::parse(&long),
            Err(NtlmError::Malformed(_))
        ));
        let mut odd = good.clone();
        odd[36..38].copy_from_slice(&7u16.to_le_bytes());
        assert!(matches!(
            Authenticate::parse(&odd),
            Err(NtlmError::Malformed(_))
        ));
        assert!(matches!(
            Authenticate::parse(&good[..40]),
            Err(NtlmError::Malformed(_))
        ));
        let mut kind = good.clone();
        kind[8] = 2;
        assert!(matches!(
            Authenticate::parse(&kind),
            Err(NtlmError::Malformed(_))
        ));
        assert!(Authenticate::parse(&vec![0u8; MAX_MESSAGE + 1]).is_err());
    }
}
