//! The room page (Lync's RoomManagementUrl): a room's managers and a category's creators
//! sign in with their chat password, see the rooms they manage, create rooms where they
//! are creators, and change what a manager may change. Server-rendered HTML (askama) with
//! no script. Every decision is `core::service` for a signed-in [`Actor::User`], so
//! `core::policy` decides; nothing here grants or refuses on its own.
//!
//! Defences: the session and sign-in cookies are `__Host-`, Secure, HttpOnly and
//! SameSite=Strict; every form posts a per-session anti-forgery token (the sign-in form a
//! double-submit one) and a cross-site Origin is refused; failed sign-ins count in the same
//! throttle as SIP's; pages are not cached, framed or allowed to load anything but our
//! stylesheet.

// Handlers hand axum `Response`s back as their errors, by value, once per request.
#![allow(clippy::result_large_err)]

mod pages;
pub mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router, middleware};
use serde::Deserialize;

use self::pages::{
    Choice, Frame, Framed, Refusal, RoomForm, RoomPage, RoomRow, RoomsPage, SignInPage,
};
use self::session::{SESSION_COOKIE, SIGN_IN_COOKIE, Session, Sessions, cookie, set_cookie};
use crate::core::Snapshot;
use crate::core::credentials::Credentials;
use crate::core::manage::{ListEdit, RoomChange};
use crate::core::metrics::metrics;
use crate::core::model::{Invitations, Principal, Privacy, Room, RoomType};
use crate::core::policy;
use crate::core::ports::Store;
use crate::core::service::{self, Actor, RoomFilter, ServiceError};
use crate::http::Peer;
use crate::net::signin::FailureThrottle;

/// Largest form body read; a room's three lists fit many times over.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Longest user name and password a sign-in form may carry (the SIP side's bound on names).
const MAX_USER_BYTES: usize = 256;
const MAX_PASSWORD_BYTES: usize = 1024;
/// A session ends after this long unused, and after `SESSION_LIFETIME` whatever happens.
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// How long the sign-in form stays good for.
const SIGN_IN_FORM_LIFETIME: Duration = Duration::from_secs(60 * 60);

pub struct WebState {
    pub store: Arc<dyn Store>,
    /// SIP's failed sign-in throttle: one count per (user, address) across protocols.
    pub throttle: Arc<FailureThrottle>,
    pub domain: String,
}

struct Web {
    state: WebState,
    sessions: Sessions,
}

pub fn router(state: WebState) -> Router {
    let web = Arc::new(Web {
        state,
        sessions: Sessions::new(SESSION_IDLE, SESSION_LIFETIME),
    });
    Router::new()
        .route("/manage", get(|| async { Redirect::to("/manage/") }))
        .route("/manage/", get(home))
        .route("/manage/style.css", get(stylesheet))
        .route("/manage/sign-in", get(sign_in_form).post(sign_in))
        .route("/manage/sign-out", post(sign_out))
        .route("/manage/rooms", post(create_room))
        .route("/manage/rooms/{uid}", get(room_page).post(save_room))
        .route("/manage/rooms/{uid}/state", post(set_room_state))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::map_response(page_headers))
        .with_state(web)
}

/// Headers every page carries: no caching (pages show who is signed in), no framing, no
/// content but our own stylesheet, and referrers only within the site (room uids stay
/// here; "no-referrer" would make browsers send `Origin: null` on our own form posts).
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../../templates/web/style.css"),
    )
}

/// A request from a signed-in browser: its session token and session.
struct Visit {
    token: String,
    session: Session,
}

fn visit(web: &Web, headers: &HeaderMap) -> Option<Visit> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let session = web.sessions.find(token, Instant::now())?;
    Some(Visit {
        token: token.to_owned(),
        session,
    })
}

/// A form post is the browser's own: no foreign Origin (browsers send it on every form
/// post), and when there is none, no cross-site fetch metadata either.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        return text(header::HOST.as_str())
            .is_some_and(|host| origin.eq_ignore_ascii_case(&format!("https://{host}")));
    }
    text("sec-fetch-site").is_none_or(|site| site == "same-origin" || site == "none")
}

/// A signed-in form post: the session's, from its own page.
fn posted_visit(web: &Web, headers: &HeaderMap, csrf: &str) -> Result<Visit, Response> {
    let Some(visit) = visit(web, headers) else {
        return Err(Redirect::to("/manage/sign-in").into_response());
    };
    if !same_origin(headers) || !session::tokens_match(&visit.session.csrf, csrf) {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            Some(&visit),
            "this form is not from this site or has expired; reload the page and try again",
        ));
    }
    Ok(visit)
}

fn frame(visit: Option<&Visit>) -> Frame {
    Frame {
        signed_in: visit.map(|v| v.session.user.clone()),
        csrf: visit.map(|v| v.session.csrf.clone()).unwrap_or_default(),
        notice: visit.and_then(|v| v.session.notice.clone()),
        error: None,
    }
}

fn refusal(status: StatusCode, visit: Option<&Visit>, text: &str) -> Response {
    let page = Refusal {
        frame: Frame {
            error: Some(text.to_owned()),
            ..frame(visit)
        },
        heading: status.canonical_reason().unwrap_or("Refused").to_owned(),
    };
    pages::render(status, &page)
}

/// A signed-in page, framed for this visit; with the refusal that brought the form back,
/// if any, whose status it answers with.
fn show<P: Framed>(visit: &Visit, mut page: P, refused: Option<&ServiceError>) -> Response {
    *page.frame_mut() = Frame {
        error: refused.map(ToString::to_string),
        ..frame(Some(visit))
    };
    let status = refused.map_or(StatusCode::OK, super::status_of);
    pages::render(status, &page)
}

/// The status a service error answers with: the API's mapping, one for all of HTTP.
fn service_refusal(visit: &Visit, error: &ServiceError) -> Response {
    refusal(super::status_of(error), Some(visit), &error.to_string())
}

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            &format!("the request's task failed: {error}"),
        )
    })
}

/// What a signed-in request may see: the model, if the user may still be signed in (an
/// enabled user whose password has not changed since; otherwise the session ends, as
/// the user's SIP registrations do).
fn signed_in_snapshot(
    store: &dyn Store,
    session: &Session,
) -> Result<Option<Snapshot>, ServiceError> {
    let still = store.user(&session.user)?.is_some_and(|record| {
        record.enabled && credential_stamp(record.credentials.as_ref()) == session.stamp
    });
    if !still {
        return Ok(None);
    }
    Ok(Some(Snapshot::from_model(store.load_model()?)))
}

/// A digest of a user's verifiers: a password change changes it.
fn credential_stamp(credentials: Option<&Credentials>) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    if let Some(credentials) = credentials {
        for verifier in [&credentials.scram_sha256, &credentials.scram_sha1]
            .into_iter()
            .flatten()
        {
            hash.update(&verifier.stored_key);
        }
        if let Some(digest) = &credentials.digest {
            hash.update(digest.sha256.as_bytes());
        }
    }
    hash.finalize().into()
}

/// A signed-in request's user, and the same user as the service's actor.
struct SignedIn {
    user: String,
    actor: Actor,
}

impl SignedIn {
    fn user(&self) -> &str {
        &self.user
    }
}

impl std::ops::Deref for SignedIn {
    type Target = Actor;
    fn deref(&self) -> &Actor {
        &self.actor
    }
}

/// Loads what a signed-in page needs, or answers: the sign-in page for an ended session.
async fn load<T: Send + 'static>(
    web: &Arc<Web>,
    visit: &Visit,
    work: impl FnOnce(&dyn Store, &Snapshot, &SignedIn) -> T + Send + 'static,
) -> Result<T, Response> {
    let store = web.state.store.clone();
    let session = visit.session.clone();
    let loaded = blocking(move || {
        signed_in_snapshot(store.as_ref(), &session).map(|snapshot| {
            snapshot.map(|snapshot| {
                work(
                    store.as_ref(),
                    &snapshot,
                    &SignedIn {
                        user: session.user.clone(),
                        actor: Actor::User(session.user.clone()),
                    },
                )
            })
        })
    })
    .await?;
    match loaded {
        Ok(Some(done)) => Ok(done),
        Ok(None) => {
            web.sessions.close(&visit.token);
            Err(Redirect::to("/manage/sign-in").into_response())
        }
        Err(error) => Err(service_refusal(visit, &error)),
    }
}

fn choices<T: Copy + PartialEq + std::fmt::Display>(all: &[T], current: T) -> Vec<Choice> {
    all.iter()
        .map(|option| Choice {
            value: option.to_string(),
            selected: *option == current,
        })
        .collect()
}

const PRIVACIES: [Privacy; 3] = [Privacy::Open, Privacy::Closed, Privacy::Secret];
const KINDS: [RoomType; 2] = [RoomType::Normal, RoomType::Auditorium];
const INVITATIONS: [Invitations; 2] = [Invitations::Inherit, Invitations::Off];

// ---- sign-in ----

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

fn sign_in_page(web: &Web, status: StatusCode, user: &str, error: Option<String>) -> Response {
    let Some(token) = session::new_token() else {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, None, "no random numbers");
    };
    let page = SignInPage {
        frame: Frame {
            signed_in: None,
            csrf: token.clone(),
            notice: None,
            error,
        },
        user: user.to_owned(),
        domain: web.state.domain.clone(),
    };
    let mut response = pages::render(status, &page);
    if let Ok(value) = set_cookie(SIGN_IN_COOKIE, &token, Some(SIGN_IN_FORM_LIFETIME)).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn sign_in_form(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if visit(&web, &headers).is_some() {
        return Redirect::to("/manage/").into_response();
    }
    sign_in_page(&web, StatusCode::OK, "", None)
}

async fn sign_in(
    State(web): State<Arc<Web>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return sign_in_page(
            &web,
            StatusCode::BAD_REQUEST,
            "",
            Some("the sign-in form was not readable".into()),
        );
    };
    let posted_cookie = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || !session::tokens_match(posted_cookie, &form.csrf) {
        return sign_in_page(
            &web,
            StatusCode::FORBIDDEN,
            "",
            Some("the sign-in form expired or is not from this site; try again".into()),
        );
    }
    if form.user.len() > MAX_USER_BYTES || form.password.len() > MAX_PASSWORD_BYTES {
        return sign_in_page(
            &web,
            StatusCode::BAD_REQUEST,
            "",
            Some("the user name or password is too long".into()),
        );
    }
    let user = form.user.trim().to_owned();
    let Ok(aor) = service::user_name(&user) else {
        return sign_in_page(
            &web,
            StatusCode::BAD_REQUEST,
            &user,
            Some(format!(
                "sign in as user@{} (your chat address)",
                web.state.domain
            )),
        );
    };
    let address = peer.ip();
    if web
        .state
        .throttle
        .is_blocked(address, Some(&aor), Instant::now())
    {
        metrics().sign_in("password", "throttled");
        return sign_in_page(
            &web,
            StatusCode::TOO_MANY_REQUESTS,
            &user,
            Some("too many failed sign-ins from this address; wait a while and try again".into()),
        );
    }
    let store = web.state.store.clone();
    let (lookup_aor, password) = (aor.clone(), form.password);
    let checked = blocking(move || {
        store.user(&lookup_aor).map(|record| {
            record.and_then(|record| {
                let good = record.enabled
                    && record
                        .credentials
                        .as_ref()
                        .is_some_and(|c| c.verify_password(&record.aor, &password));
                good.then(|| credential_stamp(record.credentials.as_ref()))
            })
        })
    })
    .await;
    let stamp = match checked {
        Ok(Ok(Some(stamp))) => stamp,
        Ok(Ok(None)) => {
            web.state
                .throttle
                .record_failure(address, Some(&aor), Instant::now());
            metrics().sign_in("password", "failure");
            tracing::info!(user = %aor, addr = %peer, "room page sign-in refused: wrong user name or password");
            return sign_in_page(
                &web,
                StatusCode::FORBIDDEN,
                &user,
                Some("wrong user name or password".into()),
            );
        }
        Ok(Err(error)) => {
            return sign_in_page(
                &web,
                StatusCode::SERVICE_UNAVAILABLE,
                &user,
                Some(format!("cannot check the password now: {error}")),
            );
        }
        Err(response) => return response,
    };
    web.state.throttle.record_success(address, &aor);
    metrics().sign_in("password", "success");
    let Some((token, _)) = web.sessions.open(&aor, stamp, Instant::now()) else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "cannot open a session now",
        );
    };
    tracing::info!(user = %aor, addr = %peer, "signed in to the room page");
    let mut response = Redirect::to("/manage/").into_response();
    for value in [
        set_cookie(SESSION_COOKIE, &token, None),
        set_cookie(SIGN_IN_COOKIE, "", Some(Duration::ZERO)),
    ] {
        if let Ok(value) = value.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let visit = match posted_visit(&web, &headers, &form.csrf) {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    web.sessions.close(&visit.token);
    let mut response = Redirect::to("/manage/sign-in").into_response();
    if let Ok(value) = set_cookie(SESSION_COOKIE, "", Some(Duration::ZERO)).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

// ---- the rooms a user manages, and creating one ----

#[derive(Deserialize, Default)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    privacy: String,
    #[serde(default)]
    kind: String,
}

fn rooms_page(
    snapshot: &Snapshot,
    user: &str,
    draft: &CreateForm,
) -> Result<RoomsPage, ServiceError> {
    let actor = &Actor::User(user.to_owned());
    let rooms = service::find_rooms(snapshot, actor, &RoomFilter::default())?
        .into_iter()
        .map(|room| RoomRow {
            uid: room.uid.clone(),
            name: room.name.clone(),
            category: snapshot
                .category(room.category)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            privacy: room.privacy.to_string(),
            kind: room.kind.to_string(),
            disabled: room.disabled,
        })
        .collect();
    let categories = snapshot
        .categories()
        .into_iter()
        .filter(|category| policy::may_create_in(snapshot, user, category))
        .map(|category| Choice {
            value: category.name.clone(),
            selected: category.name == draft.category,
        })
        .collect();
    let privacy = draft.privacy.parse().unwrap_or(Privacy::Closed);
    let kind = draft.kind.parse().unwrap_or(RoomType::Normal);
    Ok(RoomsPage {
        frame: Frame::default(),
        rooms,
        categories,
        privacies: choices(&PRIVACIES, privacy),
        kinds: choices(&KINDS, kind),
        name: draft.name.clone(),
        description: draft.description.clone(),
    })
}

async fn home(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let Some(visit) = visit(&web, &headers) else {
        return Redirect::to("/manage/sign-in").into_response();
    };
    let built = load(&web, &visit, |_, snapshot, actor| {
        rooms_page(snapshot, actor.user(), &CreateForm::default())
    })
    .await;
    match built {
        Ok(Ok(page)) => show(&visit, page, None),
        Ok(Err(error)) => service_refusal(&visit, &error),
        Err(response) => response,
    }
}

async fn create_room(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let visit = match posted_visit(&web, &headers, &form.csrf) {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let done = load(&web, &visit, move |store, snapshot, actor| {
        let user = actor.user();
        let change = (|| -> Result<RoomChange, ServiceError> {
            Ok(RoomChange {
                name: Some(form.name.trim().to_owned()),
                category: Some(form.category.clone()),
                description: Some(form.description.clone()),
                privacy: Some(parsed("privacy", &form.privacy)?),
                kind: Some(parsed("type", &form.kind)?),
                // The creator manages what they create, as with Lync's room page.
                managers: vec![ListEdit::Add(vec![Principal::User(user.to_owned())])],
                ..RoomChange::default()
            })
        })();
        match change.and_then(|change| service::save_room(store, snapshot, actor, None, change)) {
            Ok(saved) => Ok(saved.room),
            Err(error) => Err((rooms_page(snapshot, user, &form), error)),
        }
    })
    .await;
    match done {
        Ok(Ok(room)) => {
            web.sessions.notify(
                &visit.token,
                &format!("Room {} created; you manage it.", room.name),
            );
            Redirect::to(&format!("/manage/rooms/{}", room.uid)).into_response()
        }
        Ok(Err((Ok(page), error))) => show(&visit, page, Some(&error)),
        Ok(Err((Err(_), error))) => service_refusal(&visit, &error),
        Err(response) => response,
    }
}

fn parsed<T: std::str::FromStr<Err = String>>(what: &str, text: &str) -> Result<T, ServiceError> {
    text.parse()
        .map_err(|e: String| ServiceError::Invalid(format!("{what} {text:?}: {e}")))
}

// ---- one room ----

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    privacy: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    invitations: String,
    #[serde(default)]
    members: String,
    #[serde(default)]
    managers: String,
    #[serde(default)]
    presenters: String,
}

fn listed(list: &[Principal]) -> String {
    list.iter().map(|p| format!("{p}\n")).collect()
}

fn room_page_for(snapshot: &Snapshot, room: &Room, domain: &str) -> RoomPage {
    RoomPage {
        frame: Frame::default(),
        uid: room.uid.clone(),
        category: snapshot
            .category(room.category)
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        disabled: room.disabled,
        domain: domain.to_owned(),
        privacies: choices(&PRIVACIES, room.privacy),
        kinds: choices(&KINDS, room.kind),
        invitation_choices: choices(&INVITATIONS, room.invitations),
        room: RoomForm {
            name: room.name.clone(),
            description: room.description.clone(),
            members: listed(&room.members),
            managers: listed(&room.managers),
            presenters: listed(&room.presenters),
        },
    }
}

async fn room_page(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    let Some(visit) = visit(&web, &headers) else {
        return Redirect::to("/manage/sign-in").into_response();
    };
    let domain = web.state.domain.clone();
    let built = load(&web, &visit, move |_, snapshot, actor| {
        service::room_to_manage(snapshot, actor, &uid)
            .map(|room| room_page_for(snapshot, room, &domain))
    })
    .await;
    match built {
        Ok(Ok(page)) => show(&visit, page, None),
        Ok(Err(error)) => service_refusal(&visit, &error),
        Err(response) => response,
    }
}

/// One principal per line; blank lines are skipped, and an unreadable line is named.
fn principal_lines(what: &str, text: &str) -> Result<Vec<ListEdit>, ServiceError> {
    let list = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| parsed::<Principal>(what, line))
        .collect::<Result<Vec<_>, _>>()?;
    // The list becomes what the form shows: cleared, then the lines added.
    Ok(vec![ListEdit::Clear, ListEdit::Add(list)])
}

fn edit_change(room: &Room, form: &EditForm) -> Result<RoomChange, ServiceError> {
    let name = form.name.trim();
    Ok(RoomChange {
        name: (name != room.name).then(|| name.to_owned()),
        description: Some(form.description.clone()),
        privacy: Some(parsed("privacy", &form.privacy)?),
        kind: Some(parsed("type", &form.kind)?),
        invitations: Some(parsed("invitations", &form.invitations)?),
        members: principal_lines("member", &form.members)?,
        managers: principal_lines("manager", &form.managers)?,
        presenters: principal_lines("presenter", &form.presenters)?,
        ..RoomChange::default()
    })
}

/// What a saved change did, for the notice on the next page.
fn saved_notice(saved: &service::SavedRoom, what: &str) -> String {
    let mut notice = format!("{what}.");
    if !saved.removed.is_empty() {
        let names: Vec<String> = saved.removed.iter().map(ToString::to_string).collect();
        notice.push_str(&format!(
            " Removed (outside the category): {}.",
            names.join(", ")
        ));
    }
    if saved.invited > 0 {
        notice.push_str(&format!(" Invitations sent: {}.", saved.invited));
    }
    notice
}

async fn save_room(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Form(form): Form<EditForm>,
) -> Response {
    let visit = match posted_visit(&web, &headers, &form.csrf) {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let domain = web.state.domain.clone();
    let done = load(&web, &visit, move |store, snapshot, actor| {
        let room = service::room_to_manage(snapshot, actor, &uid).map_err(|error| (None, error))?;
        let change = edit_change(room, &form);
        match change
            .and_then(|change| service::save_room(store, snapshot, actor, Some(&room.name), change))
        {
            Ok(saved) => Ok(saved),
            Err(error) => {
                // The form again, with what was typed, and why it was refused.
                let mut page = room_page_for(snapshot, room, &domain);
                page.room = RoomForm {
                    name: form.name,
                    description: form.description,
                    members: form.members,
                    managers: form.managers,
                    presenters: form.presenters,
                };
                Err((Some(page), error))
            }
        }
    })
    .await;
    match done {
        Ok(Ok(saved)) => {
            web.sessions
                .notify(&visit.token, &saved_notice(&saved, "Saved"));
            Redirect::to(&format!("/manage/rooms/{}", saved.room.uid)).into_response()
        }
        Ok(Err((Some(page), error))) => show(&visit, page, Some(&error)),
        Ok(Err((None, error))) => service_refusal(&visit, &error),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct StateForm {
    #[serde(default)]
    csrf: String,
    disabled: bool,
}

async fn set_room_state(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Form(form): Form<StateForm>,
) -> Response {
    let visit = match posted_visit(&web, &headers, &form.csrf) {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let disabled = form.disabled;
    let done = load(&web, &visit, move |store, snapshot, actor| {
        let room = service::room_to_manage(snapshot, actor, &uid)?;
        let change = RoomChange {
            disabled: Some(disabled),
            ..RoomChange::default()
        };
        service::save_room(store, snapshot, actor, Some(&room.name), change)
    })
    .await;
    match done {
        Ok(Ok(saved)) => {
            let what = if disabled {
                "Room disabled: its occupants were asked to leave"
            } else {
                "Room enabled"
            };
            web.sessions
                .notify(&visit.token, &saved_notice(&saved, what));
            Redirect::to(&format!("/manage/rooms/{}", saved.room.uid)).into_response()
        }
        Ok(Err(error)) => service_refusal(&visit, &error),
        Err(response) => response,
    }
}
