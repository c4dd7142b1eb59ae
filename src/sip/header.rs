//! Structured views of the header values perch reads: name-addr (From, To, Contact), SIP
//! URIs and `;name=value` parameter lists. Values we only echo back stay as raw strings.

/// `;a=b;c` parameters. Names compare case-insensitively; quoted values are unquoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, Option<String>)>);

impl Params {
    pub fn parse(text: &str) -> Self {
        let params = split_outside_quotes(text, ';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((name, value)) => (name.trim().to_owned(), Some(unquote(value.trim()))),
                None => (p.to_owned(), None),
            })
            .collect();
        Self(params)
    }

    /// `Some(None)` for a parameter present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }
}

/// Splits on `sep` outside double quotes.
fn split_outside_quotes(text: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut in_quotes, mut escaped, mut start) = (false, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter()
}

pub fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

/// A From/To/Contact value: optional display name, URI, header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Params,
}

impl NameAddr {
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if let Some(open) = find_unquoted(value, '<') {
            let close = value[open..].find('>')? + open;
            let display = value[..open].trim();
            let display = (!display.is_empty()).then(|| unquote(display));
            let uri = value[open + 1..close].trim().to_owned();
            let rest = value[close + 1..].trim_start();
            let params = Params::parse(rest.strip_prefix(';').unwrap_or(rest));
            return (!uri.is_empty()).then_some(Self {
                display,
                uri,
                params,
            });
        }
        // addr-spec form: parameters after the URI belong to the header (RFC 3261 §20).
        let (uri, params) = value.split_once(';').unwrap_or((value, ""));
        (!uri.is_empty() && uri.contains(':')).then(|| Self {
            display: None,
            uri: uri.to_owned(),
            params: Params::parse(params),
        })
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

fn find_unquoted(text: &str, needle: char) -> Option<usize> {
    let mut in_quotes = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c == needle && !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// The parts of a `sip:` / `sips:` URI perch routes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl SipUri {
    pub fn parse(uri: &str) -> Option<Self> {
        let (scheme, rest) = uri.trim().split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
        let (addr, params) = rest.split_once(';').unwrap_or((rest, ""));
        let (user, hostport) = match addr.rsplit_once('@') {
            Some((user, hostport)) => (Some(user.split(':').next()?.to_owned()), hostport),
            None => (None, addr),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() || user.as_deref() == Some("") {
            return None;
        }
        Some(Self {
            user,
            host: host.to_ascii_lowercase(),
            port,
            params: Params::parse(params),
        })
    }

    /// `user@host` in lower case: the address-of-record key perch uses for identities.
    pub fn aor(&self) -> Option<String> {
        self.user
            .as_ref()
            .map(|user| format!("{}@{}", user.to_lowercase(), self.host))
    }
}

fn split_host_port(hostport: &str) -> Option<(&str, Option<u16>)> {
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if rest.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match hostport.split_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((hostport, None)),
    }
}

/// Parses `user@domain` or `sip:user@domain` into the canonical address-of-record.
pub fn parse_aor(text: &str) -> Option<String> {
    let text = text.trim();
    let uri = if text
        .get(..4)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sip:"))
    {
        text.to_owned()
    } else {
        format!("sip:{text}")
    };
    let parsed = SipUri::parse(&uri)?;
    let valid_host = parsed
        .host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let valid_user = parsed.user.as_deref().is_some_and(|u| {
        u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%".contains(&b))
    });
    (valid_host && valid_user && parsed.port.is_none() && parsed.params == Params::default())
        .then(|| parsed.aor())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        let a =
            NameAddr::parse(r#""Alice \"A\"" <sip:alice@example.test>;tag=123;epid=ab"#).unwrap();
        assert_eq!(a.display.as_deref(), Some(r#"Alice "A""#));
        assert_eq!(a.uri, "sip:alice@example.test");
        assert_eq!(a.tag(), Some("123"));
        assert_eq!(a.params.value("epid"), Some("ab"));

        let b = NameAddr::parse("sip:bob@example.test;tag=9").unwrap();
        assert_eq!(b.uri, "sip:bob@example.test");
        assert_eq!(b.tag(), Some("9"));
        assert!(NameAddr::parse("<>").is_none());
        assert!(NameAddr::parse("nonsense").is_none());
    }

    #[test]
    fn uri_parts() {
        let u = SipUri::parse("sip:Alice@Example.TEST:5061;transport=tls;lr").unwrap();
        assert_eq!(u.aor().as_deref(), Some("alice@example.test"));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.params.value("transport"), Some("tls"));
        assert_eq!(u.params.get("lr"), Some(None));
        let v6 = SipUri::parse("sip:[::1]:5060").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", Some(5060)));
        assert!(SipUri::parse("mailto:a@b").is_none());
        assert!(SipUri::parse("sip:a@b:notaport").is_none());
    }

    #[test]
    fn aor_validation() {
        assert_eq!(
            parse_aor("Alice@Example.test").as_deref(),
            Some("alice@example.test")
        );
        assert_eq!(parse_aor("sip:bob@x.y").as_deref(), Some("bob@x.y"));
        for bad in [
            "alice",
            "@x",
            "a b@x",
            "a@x:5060",
            "a@x;p=1",
            "a@",
            "sip:",
            "ñañañ@x",
            "sipñ",
        ] {
            assert_eq!(parse_aor(bad), None, "{bad}");
        }
    }
}
