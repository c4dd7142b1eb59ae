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

/// Splits on `sep` outside double quotes, lazily: every header parameter of every request
/// passes through here.
fn split_outside_quotes(text: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        // A separator only counts outside quotes, so each part starts outside them.
        let (mut in_quotes, mut escaped) = (false, false);
        for (i, c) in current.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                c if c == sep && !in_quotes => {
                    rest = Some(&current[i + c.len_utf8()..]);
                    return Some(&current[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(current)
    })
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
    /// Parses a name-addr or an addr-spec with its header parameters (RFC 3261 §20.10,
    /// §25.1). Malformed values are refused rather than guessed at (RFC 4475 §3.1.2.6,
    /// §3.1.2.13 to §3.1.2.15): an unterminated quoted string, a display name with
    /// non-token characters outside quotes, white space inside `<>`, an addr-spec holding
    /// `?` or `,` (RFC 3261 §20 requires such a URI in `<>`), or an empty parameter. Quoted
    /// strings may contain escaped quotes. Unquoted display names may hold non-ASCII text,
    /// which some clients send although the grammar wants it quoted.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim_matches(is_lws);
        match find_laquot(value)? {
            Some(open) => {
                let display = value[..open].trim_matches(is_lws);
                let display = if display.is_empty() {
                    None
                } else {
                    Some(display_name(display)?)
                };
                let close = open + value[open..].find('>')?;
                let uri = &value[open + 1..close];
                if !is_uri_text(uri) {
                    return None;
                }
                let params = header_params(&value[close + 1..])?;
                Some(Self {
                    display,
                    uri: uri.to_owned(),
                    params,
                })
            }
            None => {
                // addr-spec form: parameters after the URI belong to the header (RFC 3261 §20).
                let (uri, params) = value.split_at(value.find(';').unwrap_or(value.len()));
                let uri = uri.trim_end_matches(is_lws);
                if !is_uri_text(uri) || uri.contains(['?', ',']) {
                    return None;
                }
                Some(Self {
                    display: None,
                    uri: uri.to_owned(),
                    params: header_params(params)?,
                })
            }
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t')
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_token_char)
}

/// The byte length of the quoted string at the start of `text` (which starts with `"`),
/// closing quote included; `None` when it is not terminated.
fn quoted_string_len(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Where the `<` of a name-addr is, skipping quoted strings: `Some(None)` for an
/// addr-spec, `None` when a quoted string is not terminated.
fn find_laquot(text: &str) -> Option<Option<usize>> {
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        match c {
            '"' => i += quoted_string_len(&text[i..])?,
            '<' => return Some(Some(i)),
            _ => i += c.len_utf8(),
        }
    }
    Some(None)
}

/// `display-name = *(token LWS) / quoted-string`, unquoted.
fn display_name(text: &str) -> Option<String> {
    if text.starts_with('"') {
        return (quoted_string_len(text)? == text.len()).then(|| unquote(text));
    }
    text.split(is_lws)
        .filter(|word| !word.is_empty())
        .all(|word| word.chars().all(|c| is_token_char(c) || !c.is_ascii()))
        .then(|| text.to_owned())
}

/// A URI as it may stand in a header or the Request-URI: `scheme:` followed by text
/// without white space, control characters, quotes or angle brackets (RFC 3261 §25.1
/// absoluteURI, checked only as far as perch needs).
pub(crate) fn is_uri_text(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !rest
            .chars()
            .any(|c| c.is_ascii_control() || " <>\"".contains(c))
}

/// Header parameters after a URI: empty, or `;`-separated `name[=value]` with a token name
/// and a token, host or quoted-string value (RFC 3261 §25.1 generic-param). Refuses empty
/// parameters such as `;;` (RFC 4475 §3.1.2.1).
fn header_params(text: &str) -> Option<Params> {
    let text = text.trim_matches(is_lws);
    if text.is_empty() {
        return Some(Params::default());
    }
    let list = text.strip_prefix(';')?;
    split_outside_quotes(list, ';')
        .all(generic_param_is_well_formed)
        .then(|| Params::parse(list))
}

fn generic_param_is_well_formed(param: &str) -> bool {
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (name, Some(value.trim_matches(is_lws))),
        None => (param, None),
    };
    if !is_token(name.trim_matches(is_lws)) {
        return false;
    }
    match value {
        None => true,
        Some(value) if value.starts_with('"') => quoted_string_len(value) == Some(value.len()),
        Some(value) => {
            !value.is_empty()
                && !value
                    .chars()
                    .any(|c| c.is_ascii_control() || " \"<>,;".contains(c))
        }
    }
}

/// Checks one Via header line (RFC 3261 §20.42): comma-separated via-parms, each
/// `protocol / version / transport` then sent-by (`host[:port]`) and well-formed
/// parameters. White space is allowed around the slashes. Refuses empty elements and
/// parameters such as `;;,;,,` (RFC 4475 §3.1.2.1).
pub fn via_is_well_formed(value: &str) -> bool {
    super::message::split_list(value).all(|parm| {
        let parm = parm.trim_matches(is_lws);
        let (protocol, params) = parm.split_at(parm.find(';').unwrap_or(parm.len()));
        let mut parts = protocol.splitn(3, '/');
        let (Some(name), Some(version), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Some((transport, sent_by)) = rest.trim_matches(is_lws).split_once(is_lws) else {
            return false;
        };
        is_token(name.trim_matches(is_lws))
            && is_token(version.trim_matches(is_lws))
            && is_token(transport)
            && sent_by_is_well_formed(sent_by.trim_matches(is_lws))
            && header_params(params).is_some()
    })
}

/// `host[:port]`: a host name or IPv4 address, or an IPv6 reference in brackets.
fn sent_by_is_well_formed(sent_by: &str) -> bool {
    let Some((host, _port)) = split_host_port(sent_by) else {
        return false;
    };
    let ipv6 = sent_by.starts_with('[');
    !host.is_empty()
        && host.chars().all(|c| {
            if ipv6 {
                c.is_ascii_hexdigit() || c == ':' || c == '.'
            } else {
                c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'
            }
        })
}

/// The parts of a `sip:` / `sips:` URI perch routes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// The `?name=value&…` part, if any (not allowed in a Request-URI, RFC 3261 §19.1.1).
    pub headers: Option<String>,
}

impl SipUri {
    pub fn parse(uri: &str) -> Option<Self> {
        let (scheme, rest) = uri.trim().split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        // The user part may hold `;`, `?` and `:` (RFC 3261 §25.1 user-unreserved, and a
        // password), but no `@`: cut it off first, then parameters and headers from the host
        // part (RFC 4475 §3.1.1.2, §3.1.1.9).
        let (userinfo, rest) = match rest.split_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (rest, headers) = match rest.split_once('?') {
            Some((rest, headers)) => (rest, Some(headers.to_owned())),
            None => (rest, None),
        };
        let (hostport, params) = rest.split_once(';').unwrap_or((rest, ""));
        let user = match userinfo {
            Some(userinfo) => Some(userinfo.split(':').next()?.to_owned()),
            None => None,
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
            headers,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_only_outside_quotes_and_keeps_empty_parts() {
        let parts = |text| split_outside_quotes(text, ';').collect::<Vec<_>>();
        assert_eq!(parts(""), [""]);
        assert_eq!(parts(";"), ["", ""]);
        assert_eq!(parts("a;;b;"), ["a", "", "b", ""]);
        assert_eq!(
            parts(r#"a="x;\"y;" ;b;c="";"#),
            [r#"a="x;\"y;" "#, "b", r#"c="""#, ""]
        );
        // An unterminated quote runs to the end.
        assert_eq!(parts(r#"a;b="c;d"#), ["a", r#"b="c;d"#]);
    }

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
    fn name_addr_refuses_malformed_values() {
        for bad in [
            // RFC 4475 §3.1.2.6 quotbal: unterminated quoted string.
            r#""Mr. J. User <sip:j.user@example.com>"#,
            // §3.1.2.14 badaspec: spaces inside <>.
            r#""Watson, Thomas" < sip:t.watson@example.org >"#,
            // §3.1.2.15 baddn: unquoted display name with a comma.
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            // §3.1.2.13 regbadct: an addr-spec with headers must be in <>.
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            // §3.1.2.1 badinv01: empty parameters.
            r#""Joe" <sip:joe@example.org>;;;;"#,
            "<sip:a@b>;tag=",
            r#"<sip:a@b>;x="open"#,
            "<sip:a@b> trailing",
            "<sip:a@b",
            "<not a uri>",
            r#""quoted" sip:a@b"#,
        ] {
            assert_eq!(NameAddr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn name_addr_reads_escaped_quotes_and_unusual_forms() {
        // RFC 4475 §3.1.1.1 wsinv: an odd number of escaped quotes before the `<` made the
        // old scanner think the `<` was quoted and take the whole value for an addr-spec.
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(a.uri, "sip:jdrosen@example.com");
        assert_eq!(a.tag(), Some("98asjd8"));
        // Same file: addr-spec with spaced parameters.
        let b =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(b.uri, "sip:vivekg@chair-dnrc.example.com");
        assert_eq!(b.tag(), Some("1918181833n"));
        // §3.1.1.6 lwsdisp: no space between display name and `<`.
        let c = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(c.display.as_deref(), Some("caller"));
        // §3.1.1.2 intmeth: control characters as quoted pairs, token display names.
        let d = NameAddr::parse("\"BEL:\\\x07 NUL:\\\0 DEL:\\\x7f\" <sip:x@example.com>").unwrap();
        assert_eq!(d.display.as_deref(), Some("BEL:\x07 NUL:\0 DEL:\x7f"));
        let e = NameAddr::parse("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=_t")
            .unwrap();
        assert_eq!(e.display.as_deref(), Some("token1~` token2'+_ token3*%!.-"));
        // A SIPE Contact: quoted parameter values holding `<`, `>` and commas.
        let f = NameAddr::parse(
            r#"<sip:10.0.0.5:53412;transport=tls;ms-opaque=d3>;methods="INVITE, MESSAGE";proxy=replace;+sip.instance="<urn:uuid:1>""#,
        )
        .unwrap();
        assert_eq!(f.params.value("+sip.instance"), Some("<urn:uuid:1>"));
        assert_eq!(f.params.value("methods"), Some("INVITE, MESSAGE"));
        // §3.3.4 unksm2: other schemes are fine.
        assert!(NameAddr::parse("isbn:2983792873").is_some());
        assert!(NameAddr::parse("<name:John_Smith>").is_some());
    }

    #[test]
    fn via_forms() {
        for good in [
            "SIP/2.0/tls 10.0.0.5:53412",
            "SIP/2.0/TCP h",
            // RFC 4475 §3.1.1.1 wsinv, after folding.
            "SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw",
            "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
            // §3.1.1.10 transports, §3.1.1.11 mpart01.
            "SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport",
            "SIP/2.0/TCP [2001:db8::9:1]:5061;branch=z9hG4bKas;received=[2001:db8::9:255]",
        ] {
            assert!(via_is_well_formed(good), "{good}");
        }
        for bad in [
            // RFC 4475 §3.1.2.1 badinv01.
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/2.0/UDP 192.0.2.15,",
            "SIP/2.0/UDP",
            "SIP/2.0 host",
            "SIP/2.0/UDP host:notaport",
            "SIP/2.0/UDP ho st",
            "SIP/2.0/UDP host;branch=",
            "v",
            "",
        ] {
            assert!(!via_is_well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn uri_user_part_may_hold_semicolons_and_question_marks() {
        // RFC 4475 §3.1.1.9 semiuri: the `;` belongs to the user part; the old parser cut
        // parameters first and took "user" for the host.
        let u = SipUri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        // §3.1.1.2 intmeth: `?` in the user part, then a password; the old parser cut
        // headers at the first `?` and lost the host.
        let v = SipUri::parse(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        )
        .unwrap();
        assert_eq!(
            v.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!((v.host.as_str(), v.headers), ("example.com", None));
        // §3.1.2.11 escruri: headers are kept apart so a Request-URI can be refused.
        let w = SipUri::parse("sip:user@example.com;lr?Route=%3Csip:example.com%3E").unwrap();
        assert_eq!(w.host, "example.com");
        assert_eq!(w.params.get("lr"), Some(None));
        assert_eq!(w.headers.as_deref(), Some("Route=%3Csip:example.com%3E"));
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
}
