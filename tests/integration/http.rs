//! The HTTPS side against a real server: health, readiness, and metrics that move as a
//! client signs in and posts, over TLS with the SIP listeners' certificate.

use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::chat::{Chat, room_uri, seed, trusted};
use crate::support::{TestServer, tls_connect};

/// One GET over a new TLS connection: the status and the body.
async fn get(addr: SocketAddr, cert: &Path, path: &str) -> (u16, String) {
    call(addr, cert, "GET", path, None, None).await
}

/// One request over a new TLS connection, with a bearer token and a JSON body if given.
async fn call(
    addr: SocketAddr,
    cert: &Path,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let reply = exchange(addr, cert, &request).await;
    (reply.status, reply.body)
}

/// An HTTP response as read off the wire: the status, the header block, the body.
pub(crate) struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The values of header `name`, in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .lines()
            .filter_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim())
            })
            .collect()
    }
}

/// Writes `request` (whole, with `Connection: close`) over a new TLS connection that trusts
/// only `cert`, and reads the response to the end.
pub(crate) async fn exchange(addr: SocketAddr, cert: &Path, request: &str) -> Reply {
    let mut tls = tls_connect(addr, cert, "localhost").await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// packaging/grafana/perch.json queries only series that perch exports (by the `# TYPE`
/// lines of a scrape: a counter `x` is sampled as `x_total`, a histogram as `x_bucket`,
/// `x_sum` and `x_count`).
fn dashboard_queries_only_what_perch_exports(scrape: &str) {
    let exported: Vec<&str> = scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/grafana/perch.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("perch_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = ["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name);
                assert!(
                    exported.contains(&family) || exported.contains(&name.as_str()),
                    "{} queries {name}, which perch does not export:\n{scrape}",
                    panel["title"]
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 15, "{queried} series queried");
}

/// The value of the sample line that starts with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_over_https() {
    let server = TestServer::start_seeded(
        |config| {
            trusted(config);
            config.http.listen = Some("127.0.0.1:0".parse().unwrap());
        },
        seed,
    )
    .await;
    let addr = server.running().http_addr().unwrap();
    let cert = server.running().certificate().unwrap().cert.clone();

    assert_eq!(get(addr, &cert, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(
        get(addr, &cert, "/readyz").await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(get(addr, &cert, "/nothing").await.0, 404);

    let (status, before) = get(addr, &cert, "/metrics").await;
    assert_eq!(status, 200);
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let mut alice = Chat::connect(&server, "alice").await;
    alice.join(&lobby).await;
    for n in 0..3 {
        assert_eq!(alice.post(&lobby, &format!("counted {n}")).await, 200);
    }
    // A search is always a store read (history may come from the cache).
    alice
        .history(&lobby, r#"<search cnt="5">counted</search>"#)
        .await;
    let (_, after) = get(addr, &cert, "/metrics").await;
    for (series, at_least) in [
        ("perch_posts_total ", 3.0),
        ("perch_deliveries_total ", 3.0),
        (
            "perch_sign_ins_total{mechanism=\"trusted\",outcome=\"success\"} ",
            1.0,
        ),
        (
            "perch_connections_accepted_total{protocol=\"sip\",transport=\"tls\"} ",
            1.0,
        ),
        ("perch_store_commit_seconds_count ", 3.0),
    ] {
        let moved = sample(&after, series) - sample(&before, series);
        assert!(moved >= at_least, "{series} moved by {moved}:\n{after}");
    }
    assert!(
        sample(
            &after,
            "perch_connections{protocol=\"sip\",transport=\"tls\"} "
        ) >= 1.0,
        "{after}"
    );
    dashboard_queries_only_what_perch_exports(&after);
    // alice is in Lobby: her session and the room count while she stays.
    for series in [
        "perch_chat_sessions{gateway=\"lync\"} ",
        "perch_active_rooms ",
    ] {
        assert!(sample(&after, series) >= 1.0, "{series}:\n{after}");
    }
    assert!(sample(&after, "perch_store_bytes ") > 0.0, "{after}");
    assert!(after.ends_with("# EOF\n"), "{after}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_does_what_perch_admin_does_with_a_token() {
    let server = TestServer::start_seeded(
        |config| config.http.listen = Some("127.0.0.1:0".parse().unwrap()),
        seed,
    )
    .await;
    let addr = server.running().http_addr().unwrap();
    let cert = server.running().certificate().unwrap().cert.clone();
    let store = server.store.clone();
    let token = tokio::task::spawn_blocking(move || {
        perch::core::service::create_admin_token(store.as_ref(), "tests").unwrap()
    })
    .await
    .unwrap();
    let api = |method: &'static str, path: String, body: Option<String>| {
        let (cert, token) = (cert.clone(), token.clone());
        async move { call(addr, &cert, method, &path, Some(&token), body.as_deref()).await }
    };

    // No token, a made-up one: 401, and nothing said about which tokens exist.
    let (status, body) = call(addr, &cert, "GET", "/api/v1/users", None, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("an admin token is needed"), "{body}");
    let forged = "perch_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (status, _) = call(addr, &cert, "GET", "/api/v1/users", Some(forged), None).await;
    assert_eq!(status, 401);

    let new_user = r#"{"uri": "sip:Dora@example.test", "password": "pw"}"#;
    let (status, body) = api("POST", "/api/v1/users".into(), Some(new_user.into())).await;
    assert_eq!(
        (status, body.as_str()),
        (201, r#"{"uri":"sip:dora@example.test"}"#)
    );
    let (status, body) = api("POST", "/api/v1/users".into(), Some(new_user.into())).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already exists"), "{body}");
    let (_, users) = api("GET", "/api/v1/users".into(), None).await;
    assert!(
        users.contains(r#""uri":"sip:dora@example.test""#),
        "{users}"
    );

    let room = r#"{"name": "Api", "category": "General", "privacy": "open", "managers": ["sip:dora@example.test"]}"#;
    let (status, body) = api("POST", "/api/v1/rooms".into(), Some(room.into())).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api(
        "POST",
        "/api/v1/rooms".into(),
        Some(r#"{"name": "Bad", "category": "General", "privacy": "public"}"#.into()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#"privacy \"public\""#), "{body}");
    let (status, body) = api("POST", "/api/v1/rooms/api/disable".into(), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""disabled":true"#), "{body}");
    let (status, body) = api("POST", "/api/v1/rooms/Api/enable".into(), None).await;
    assert!(
        status == 200 && body.contains(r#""disabled":false"#),
        "{body}"
    );
    let (_, rooms) = api("GET", "/api/v1/rooms".into(), None).await;
    assert!(rooms.contains(r#""name":"Api""#), "{rooms}");
    let (_, open) = api("GET", "/api/v1/rooms?privacy=open&filter=AP".into(), None).await;
    assert!(
        open.contains(r#""name":"Api""#) && open.matches(r#""uid""#).count() == 1,
        "{open}"
    );
    let (status, body) = api("GET", "/api/v1/rooms?privacy=public".into(), None).await;
    assert!(status == 400 && body.contains("privacy"), "{status} {body}");
    let edit =
        r#"{"add_members": ["sip:dora@example.test"], "description": "new", "dry_run": true}"#;
    let (status, body) = api("PATCH", "/api/v1/rooms/Api".into(), Some(edit.into())).await;
    assert!(
        status == 200 && body.contains(r#""dry_run":true"#),
        "{body}"
    );
    let (_, shown) = api("GET", "/api/v1/rooms/Api".into(), None).await;
    assert!(
        shown.contains(r#""members":[]"#),
        "a dry run changed the room: {shown}"
    );
    let edit = r#"{"add_members": ["sip:dora@example.test"], "description": "new"}"#;
    let (status, body) = api("PATCH", "/api/v1/rooms/Api".into(), Some(edit.into())).await;
    assert!(
        status == 200 && body.contains(r#""members":["sip:dora@example.test"]"#),
        "{body}"
    );
    let (status, body) = api(
        "PUT",
        "/api/v1/settings".into(),
        Some(r#"{"name": "DefaultChatHistory", "value": 501}"#.into()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("between 1 and 500"), "{body}");
    let (status, _) = api(
        "PUT",
        "/api/v1/settings".into(),
        Some(r#"{"name": "defaultchathistory", "value": 42}"#.into()),
    )
    .await;
    assert_eq!(status, 200);
    let (_, settings) = api("GET", "/api/v1/settings".into(), None).await;
    assert!(
        settings.contains(r#""DefaultChatHistory":42"#),
        "{settings}"
    );
    let (status, body) = api(
        "PATCH",
        "/api/v1/users/dora@example.test".into(),
        Some(r#"{"enabled": false}"#.into()),
    )
    .await;
    assert!(
        status == 200 && body.contains(r#""enabled":false"#),
        "{body}"
    );
    let (status, _) = api(
        "POST",
        "/api/v1/users/dora@example.test/unlock".into(),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (status, body) = api("DELETE", "/api/v1/users/dora@example.test".into(), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""rooms":["Api"]"#), "{body}");
    let (_, shown) = api("GET", "/api/v1/rooms/Api".into(), None).await;
    assert!(shown.contains(r#""managers":[]"#), "{shown}");
    let (status, _) = api("DELETE", "/api/v1/rooms/Api".into(), None).await;
    assert_eq!(status, 200);
    let (status, body) = api("GET", "/api/v1/rooms/Api".into(), None).await;
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":"room Api does not exist"}"#)
    );

    // Every operation the OpenAPI file describes is routed: its answer is the API's JSON,
    // never the router's empty 404 or 405.
    let spec: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/openapi.json")).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 18);
    for (path, operations) in paths {
        let concrete = path
            .replace("{uri}", "nobody@example.test")
            .replace("{name}", "Nowhere");
        for (method, operation) in operations.as_object().unwrap() {
            assert!(operation["responses"].is_object(), "{method} {path}");
            let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| "{}".to_owned());
            let (status, text) = api(
                Box::leak(method.to_uppercase().into_boxed_str()),
                concrete.clone(),
                body,
            )
            .await;
            assert!(
                status != 405 && (text.starts_with('{') || text.starts_with('[')),
                "{method} {path}: {status} {text:?}"
            );
        }
    }

    // Groups, policy, add-ins and categories, as `perch admin` would do them.
    let steps: &[(&str, &str, Option<&str>, u16, &str)] = &[
        (
            "POST",
            "/api/v1/groups",
            Some(r#"{"name": "ops"}"#),
            201,
            r#""name":"ops""#,
        ),
        (
            "POST",
            "/api/v1/groups",
            Some(r#"{"name": "OPS"}"#),
            409,
            "already exists",
        ),
        (
            "PATCH",
            "/api/v1/groups/ops",
            Some(r#"{"add_members": ["sip:alice@example.test"]}"#),
            200,
            r#""members":["sip:alice@example.test"]"#,
        ),
        (
            "PUT",
            "/api/v1/policies",
            Some(r#"{"scope": "group:ops", "enabled": false}"#),
            200,
            r#""enabled":false"#,
        ),
        (
            "GET",
            "/api/v1/policies",
            None,
            200,
            r#""scope":"group:ops""#,
        ),
        ("DELETE", "/api/v1/groups/ops", None, 400, "policy"),
        (
            "DELETE",
            "/api/v1/policies/group:ops",
            None,
            200,
            r#""removed":"group:ops""#,
        ),
        (
            "DELETE",
            "/api/v1/groups/ops",
            None,
            200,
            r#""removed":"ops""#,
        ),
        (
            "POST",
            "/api/v1/addins",
            Some(r#"{"name": "Tickets", "url": "ftp://x"}"#),
            400,
            "http",
        ),
        (
            "POST",
            "/api/v1/addins",
            Some(r#"{"name": "Tickets", "url": "https://t.example.test/"}"#),
            201,
            r#""name":"Tickets""#,
        ),
        (
            "GET",
            "/api/v1/addins",
            None,
            200,
            "https://t.example.test/",
        ),
        (
            "DELETE",
            "/api/v1/addins/Tickets",
            None,
            200,
            r#""removed":"Tickets""#,
        ),
        (
            "POST",
            "/api/v1/categories",
            Some(r#"{"name": "Api", "add_allowed": ["domain:example.test"]}"#),
            201,
            r#""allowed":["domain:example.test"]"#,
        ),
        (
            "PATCH",
            "/api/v1/categories/api",
            Some(r#"{"description": "made over HTTPS", "dry_run": true}"#),
            200,
            r#""dry_run":true"#,
        ),
        (
            "DELETE",
            "/api/v1/categories/Api",
            None,
            200,
            r#""removed":"Api""#,
        ),
        (
            "DELETE",
            "/api/v1/categories/Api",
            None,
            404,
            "does not exist",
        ),
    ];
    for (method, path, body, status, expected) in steps {
        let (got, text) = api(method, (*path).to_owned(), body.map(str::to_owned)).await;
        assert!(
            got == *status && text.contains(expected),
            "{method} {path}: {got} {text}"
        );
    }

    // A revoked token is refused at once.
    let store = server.store.clone();
    tokio::task::spawn_blocking(move || {
        perch::core::service::revoke_admin_token(store.as_ref(), "tests").unwrap()
    })
    .await
    .unwrap();
    let (status, body) = api("GET", "/api/v1/users".into(), None).await;
    assert_eq!(status, 401, "{body}");
    server.stop().await;
}
