//! Identifiers on the wire: room URIs `ma-chan://<domain>/<id>`, the root category URI,
//! user URIs, and the 7-digit UTC timestamps.

pub const ROOM_SCHEME: &str = "ma-chan://";

pub fn room_uri(domain: &str, uid: &str) -> String {
    format!("{ROOM_SCHEME}{domain}/{uid}")
}

/// The room id of a `ma-chan://` URI, if it is one of `domain`'s.
pub fn room_uid<'a>(uri: &'a str, domain: &str) -> Option<&'a str> {
    let rest = uri.strip_prefix(ROOM_SCHEME)?;
    let (host, uid) = rest.split_once('/')?;
    (host.eq_ignore_ascii_case(domain) && !uid.is_empty()).then_some(uid)
}

pub fn root_category_uri(domain: &str) -> String {
    format!("ma-cat://{domain}/00000000-0000-0000-0000-000000000000")
}

pub fn user_uri(aor: &str) -> String {
    format!("sip:{aor}")
}

/// `YYYY-MM-DDTHH:MM:SS.fffffffZ` from 100 ns ticks since the Unix epoch.
pub fn timestamp(ticks: i64) -> String {
    let nanos = i128::from(ticks) * 100;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond() / 100
        ),
        Err(_) => "1970-01-01T00:00:00.0000000Z".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_times() {
        let uri = room_uri("example.test", "abc");
        assert_eq!(room_uid(&uri, "EXAMPLE.test"), Some("abc"));
        assert_eq!(room_uid(&uri, "other.test"), None);
        assert_eq!(room_uid("ma-chan://example.test/", "example.test"), None);
        assert_eq!(
            timestamp(12_844_743_776_206_356),
            "2010-09-14T14:26:17.6206356Z"
        );
    }
}
