//! `--auth` and `--password`: how the clients of a run sign in. The answers to perch's
//! 401s are the kit's (`perch::lync::client::auth`).

use clap::ValueEnum;

pub use perch::lync::client::SignIn;

/// `--auth`: how clients answer perch's challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethod {
    /// RFC 7616 Digest (SHA-256 when offered, else MD5).
    Digest,
    /// NTLMv2 with MS-SIPAE signing of every message, as Pidgin-SIPE and Lync.
    Ntlm,
}

/// `--auth` and `--password` together: Digest when a password comes without `--auth`,
/// trusted without a password.
pub fn sign_in(method: Option<AuthMethod>, password: Option<&str>) -> Result<SignIn, String> {
    match (method, password) {
        (None, None) => Ok(SignIn::Trusted),
        (Some(method), None) => Err(format!(
            "--auth {} needs --password",
            match method {
                AuthMethod::Digest => "digest",
                AuthMethod::Ntlm => "ntlm",
            }
        )),
        (None | Some(AuthMethod::Digest), Some(password)) => Ok(SignIn::digest(password)),
        (Some(AuthMethod::Ntlm), Some(password)) => Ok(SignIn::ntlm(password)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_pick_the_mechanism() {
        assert!(matches!(sign_in(None, None), Ok(SignIn::Trusted)));
        assert!(matches!(
            sign_in(None, Some("pw")),
            Ok(SignIn::Digest { .. })
        ));
        assert!(matches!(
            sign_in(Some(AuthMethod::Ntlm), Some("pw")),
            Ok(SignIn::Ntlm { .. })
        ));
        let refused = sign_in(Some(AuthMethod::Ntlm), None).unwrap_err();
        assert!(
            refused.contains("--auth ntlm needs --password"),
            "{refused}"
        );
    }
}
