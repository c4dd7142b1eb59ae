//! Signed-in sessions of the room page, kept in memory: a random token in a cookie names
//! one, and each carries its own anti-forgery token that every form posts back. Bounded in
//! number (per user and in total), idle time and age; a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::core::credentials::constant_time_eq;
pub use crate::core::ids::new_token;

/// The session cookie. `__Host-` makes browsers refuse it unless it is Secure, for `/`
/// and set by this host only (no Domain), so a neighbour host cannot plant one.
pub const SESSION_COOKIE: &str = "__Host-perch-session";
/// The sign-in form's own anti-forgery cookie (double submit), so that another site
/// cannot sign a browser in under the attacker's account.
pub const SIGN_IN_COOKIE: &str = "__Host-perch-sign-in";

/// Sessions held at once; past it the least recently used goes. A session is a user name
/// (at most 256 bytes), two tokens and one message, so the table stays under a few MB.
const MAX_SESSIONS: usize = 10_000;
/// Sessions per user (browsers, devices); past it the user's least recently used goes.
const MAX_PER_USER: usize = 8;
/// The longest message carried from one page to the next.
const MAX_NOTICE_BYTES: usize = 1024;

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    /// Posted back by every form of this session.
    pub csrf: String,
    /// What the last change did, shown once on the next page.
    pub notice: Option<String>,
    /// A digest of the user's verifiers at sign-in: a password change ends the session.
    pub stamp: [u8; 32],
    created: Instant,
    last_seen: Instant,
}

pub struct Sessions {
    /// By the SHA-256 of the token: a lookup compares digests, not the secret itself.
    table: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
    lifetime: Duration,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a posted anti-forgery token is the expected one.
pub fn tokens_match(expected: &str, posted: &str) -> bool {
    !expected.is_empty() && constant_time_eq(expected.as_bytes(), posted.as_bytes())
}

impl Sessions {
    pub fn new(idle: Duration, lifetime: Duration) -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            idle,
            lifetime,
        }
    }

    fn live(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) < self.idle
            && now.duration_since(session.created) < self.lifetime
    }

    /// Opens a session for `user`: its token (for the cookie) and the session. `None` if
    /// the system's random generator fails.
    pub fn open(&self, user: &str, stamp: [u8; 32], now: Instant) -> Option<(String, Session)> {
        let token = new_token()?;
        let session = Session {
            user: user.to_owned(),
            csrf: new_token()?,
            notice: None,
            stamp,
            created: now,
            last_seen: now,
        };
        let mut table = self.table.lock().ok()?;
        table.retain(|_, s| self.live(s, now));
        let mut mine: Vec<([u8; 32], Instant)> = table
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(k, s)| (*k, s.last_seen))
            .collect();
        if mine.len() >= MAX_PER_USER {
            mine.sort_by_key(|(_, seen)| *seen);
            for (k, _) in &mine[..=mine.len() - MAX_PER_USER] {
                table.remove(k);
            }
        }
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
        table.insert(key(&token), session.clone());
        Some((token, session))
    }

    /// The live session `token` names, seen now; its notice is handed over once.
    pub fn find(&self, token: &str, now: Instant) -> Option<Session> {
        let mut table = self.table.lock().ok()?;
        let k = key(token);
        let session = table.get_mut(&k)?;
        if !self.live(session, now) {
            table.remove(&k);
            return None;
        }
        session.last_seen = now;
        let found = session.clone();
        session.notice = None;
        Some(found)
    }

    /// Leaves a message for the session's next page.
    pub fn notify(&self, token: &str, notice: &str) {
        if let Ok(mut table) = self.table.lock()
            && let Some(session) = table.get_mut(&key(token))
        {
            let mut end = notice.len().min(MAX_NOTICE_BYTES);
            while !notice.is_char_boundary(end) {
                end -= 1;
            }
            session.notice = Some(notice[..end].to_owned());
        }
    }

    pub fn close(&self, token: &str) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(&key(token));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().unwrap().len()
    }
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// A Set-Cookie value for `name`: Secure, HttpOnly, SameSite=Strict, for the whole host.
/// `max_age` of zero deletes it; `None` keeps it for the browser's session.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>) -> String {
    let mut cookie = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(Duration::from_secs(60), Duration::from_secs(600))
    }

    #[test]
    fn a_token_finds_its_session_until_it_idles_or_ages_out() {
        let sessions = sessions();
        let t0 = Instant::now();
        let (token, opened) = sessions.open("alice@x", [0; 32], t0).unwrap();
        assert_eq!(opened.csrf.len(), 43);
        let found = sessions.find(&token, t0 + Duration::from_secs(59)).unwrap();
        assert_eq!(found.user, "alice@x");
        assert!(sessions.find("not-a-token", t0).is_none());
        // Kept alive by use, yet never past its lifetime.
        let mut now = t0;
        for _ in 0..9 {
            now += Duration::from_secs(59);
            assert!(sessions.find(&token, now).is_some());
        }
        assert!(
            sessions
                .find(&token, t0 + Duration::from_secs(600))
                .is_none()
        );
        let (idle, _) = sessions.open("alice@x", [0; 32], t0).unwrap();
        assert!(sessions.find(&idle, t0 + Duration::from_secs(60)).is_none());
    }

    #[test]
    fn a_user_holds_a_bounded_number_of_sessions() {
        let sessions = sessions();
        let t0 = Instant::now();
        let tokens: Vec<String> = (0..MAX_PER_USER as u64 + 3)
            .map(|n| {
                sessions
                    .open("alice@x", [0; 32], t0 + Duration::from_millis(n))
                    .unwrap()
                    .0
            })
            .collect();
        assert_eq!(sessions.len(), MAX_PER_USER);
        let now = t0 + Duration::from_secs(1);
        assert!(sessions.find(&tokens[0], now).is_none(), "the oldest went");
        assert!(sessions.find(tokens.last().unwrap(), now).is_some());
        sessions.open("bob@x", [0; 32], now).unwrap();
        assert_eq!(sessions.len(), MAX_PER_USER + 1);
    }

    #[test]
    fn a_notice_is_shown_once_and_bounded() {
        let sessions = sessions();
        let t0 = Instant::now();
        let (token, _) = sessions.open("alice@x", [0; 32], t0).unwrap();
        sessions.notify(&token, &"é".repeat(MAX_NOTICE_BYTES));
        let notice = sessions.find(&token, t0).unwrap().notice.unwrap();
        assert!(notice.len() <= MAX_NOTICE_BYTES);
        assert!(sessions.find(&token, t0).unwrap().notice.is_none());
        sessions.close(&token);
        assert!(sessions.find(&token, t0).is_none());
    }

    #[test]
    fn cookies_are_read_from_every_header_and_set_strictly() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("cookie", "a=1; __Host-perch-session=tok".parse().unwrap());
        headers.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "tok", None);
        for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attribute), "{set}");
        }
        assert!(!tokens_match("", ""));
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
    }
}
