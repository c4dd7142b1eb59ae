//! The admin API: JSON over HTTPS for what `perch admin` does, through the same service
//! functions (so the same rules and the same one-line errors), authenticated by admin
//! tokens (`Authorization: Bearer perch_...`, made with `perch admin token create`).
//! `schemas/openapi.json` describes it; a test keeps the two in step.
//!
//! Covered: users (list, add, change, unlock, remove, preferences shown and cleared), rooms (list, show, create, change
//! with an optional dry run, disable, enable, clear, remove), categories (list, create, change
//! with an optional dry run, remove), groups (list, add, member edits, remove), policy
//! (list, set, remove), add-ins (list, create, change, remove) and the server's chat
//! settings (show, set).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::core::Snapshot;
use crate::core::manage::{ListEdit, ManageError, RoomChange};
use crate::core::model::{Principal, Privacy, Room, RoomType};
use crate::core::ports::{Store, StoreError};
use crate::core::service::{self, Actor, RoomFilter, ServiceError};

/// Largest JSON body the API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A refusal: the status and the one line `perch admin` would print.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError(super::status_of(&error), error.to_string())
    }
}

/// A body that is not the JSON an operation takes: the same one-line JSON error.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        ApiError(rejection.status(), rejection.body_text())
    }
}

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ServiceError::Store(error).into()
    }
}

type ApiResult = Result<(StatusCode, Json<Value>), ApiError>;

pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/api/v1/users", get(list_users).post(add_user))
        .route(
            "/api/v1/users/{uri}",
            axum::routing::delete(remove_user).patch(change_user),
        )
        .route("/api/v1/users/{uri}/unlock", post(unlock_user))
        .route(
            "/api/v1/users/{uri}/preferences",
            get(user_preferences).delete(clear_user_preferences),
        )
        .route("/api/v1/rooms/{name}/clear", post(clear_room))
        .route("/api/v1/settings", get(show_settings).put(set_setting))
        .route(
            "/api/v1/categories",
            get(list_categories).post(create_category),
        )
        .route(
            "/api/v1/categories/{name}",
            axum::routing::patch(change_category).delete(remove_category),
        )
        .route("/api/v1/groups", get(list_groups).post(add_group))
        .route(
            "/api/v1/groups/{name}",
            axum::routing::patch(edit_group).delete(remove_group),
        )
        .route("/api/v1/policies", get(list_policies).put(set_policy))
        .route(
            "/api/v1/policies/{scope}",
            axum::routing::delete(remove_policy),
        )
        .route("/api/v1/addins", get(list_addins).post(create_addin))
        .route(
            "/api/v1/addins/{name}",
            axum::routing::put(change_addin).delete(remove_addin),
        )
        .route("/api/v1/rooms", get(list_rooms).post(create_room))
        .route(
            "/api/v1/rooms/{name}",
            get(show_room).delete(remove_room).patch(change_room),
        )
        .route("/api/v1/rooms/{name}/disable", post(disable_room))
        .route("/api/v1/rooms/{name}/enable", post(enable_room))
        .route_layer(middleware::from_fn_with_state(store.clone(), authenticate))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(store)
}

/// Every API route needs a token; the refusal says why, never whether a token exists.
async fn authenticate(
    State(store): State<Arc<dyn Store>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let refused = |text: &str| {
        let mut response = ApiError(StatusCode::UNAUTHORIZED, text.to_owned()).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"perch\""),
        );
        response
    };
    let Some(secret) = presented else {
        return refused("an admin token is needed: Authorization: Bearer perch_...");
    };
    match service::authenticate_admin(store.as_ref(), secret).await {
        Ok(Some(name)) => {
            tracing::debug!(token = name, path = %request.uri().path(), "admin API request");
            next.run(request).await
        }
        Ok(None) => refused("unknown or revoked admin token"),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// Runs blocking service work (it waits for commits) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's task failed: {e}"),
        )
    })?
}

fn snapshot(store: &dyn Store) -> Result<Snapshot, ApiError> {
    Ok(Snapshot::from_model(store.load_model()?))
}

async fn list_users(State(store): State<Arc<dyn Store>>) -> ApiResult {
    blocking(move || {
        let users: Vec<Value> = service::users(store.as_ref())?
            .into_iter()
            .map(|u| {
                json!({
                    "uri": format!("sip:{}", u.aor),
                    "name": u.display_name,
                    "enabled": u.enabled,
                    "password": u.credentials.is_some(),
                })
            })
            .collect();
        Ok((StatusCode::OK, Json(Value::Array(users))))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    uri: String,
    name: Option<String>,
    /// Without one the user signs in only from a trusted network.
    password: Option<String>,
    #[serde(default = "enabled")]
    enabled: bool,
}

fn enabled() -> bool {
    true
}

async fn add_user(State(store): State<Arc<dyn Store>>, body: Body<NewUser>) -> ApiResult {
    let Json(new) = body?;
    blocking(move || {
        let user = service::add_user(
            store.as_ref(),
            &new.uri,
            new.name.as_deref(),
            new.password.as_deref(),
            new.enabled,
        )?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "uri": format!("sip:{}", user.aor) })),
        ))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEdit {
    name: Option<String>,
    password: Option<String>,
    enabled: Option<bool>,
}

async fn change_user(
    State(store): State<Arc<dyn Store>>,
    Path(uri): Path<String>,
    body: Body<UserEdit>,
) -> ApiResult {
    let Json(edit) = body?;
    blocking(move || {
        let user = service::set_user(
            store.as_ref(),
            &uri,
            edit.name.as_deref(),
            edit.password.as_deref(),
            edit.enabled,
        )?;
        Ok((
            StatusCode::OK,
            Json(json!({
                "uri": format!("sip:{}", user.aor),
                "name": user.display_name,
                "enabled": user.enabled,
                "password": user.credentials.is_some(),
            })),
        ))
    })
    .await
}

async fn unlock_user(State(store): State<Arc<dyn Store>>, Path(uri): Path<String>) -> ApiResult {
    blocking(move || {
        let aor = service::unlock_user(store.as_ref(), &uri)?;
        Ok((
            StatusCode::OK,
            Json(json!({ "unlocked": format!("sip:{aor}") })),
        ))
    })
    .await
}

async fn show_settings(State(store): State<Arc<dyn Store>>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let settings: serde_json::Map<String, Value> = crate::core::model::SETTING_NAMES
            .iter()
            .map(|name| {
                let value = snapshot.settings.get(name).unwrap_or_default();
                ((*name).to_owned(), json!(value))
            })
            .collect();
        Ok((StatusCode::OK, Json(Value::Object(settings))))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Setting {
    name: String,
    value: u32,
}

async fn set_setting(State(store): State<Arc<dyn Store>>, body: Body<Setting>) -> ApiResult {
    let Json(setting) = body?;
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let name = service::set_setting(store.as_ref(), &snapshot, &setting.name, setting.value)?;
        Ok((
            StatusCode::OK,
            Json(json!({ "name": name, "value": setting.value })),
        ))
    })
    .await
}

async fn remove_user(State(store): State<Arc<dyn Store>>, Path(uri): Path<String>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let removed = service::remove_user(store.as_ref(), &snapshot, &uri)?;
        Ok((
            StatusCode::OK,
            Json(json!({
                "removed": format!("sip:{}", removed.aor),
                "rooms": removed.rooms,
                "categories": removed.categories,
                "groups": removed.groups,
            })),
        ))
    })
    .await
}

async fn list_categories(State(store): State<Arc<dyn Store>>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let categories: Vec<Value> = snapshot
            .categories()
            .into_iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "description": c.description,
                    "allowed": names(&c.allowed),
                    "denied": names(&c.denied),
                    "creators": names(&c.creators),
                })
            })
            .collect();
        Ok((StatusCode::OK, Json(Value::Array(categories))))
    })
    .await
}

fn names(principals: &[Principal]) -> Vec<String> {
    principals.iter().map(ToString::to_string).collect()
}

fn room_json(snapshot: &Snapshot, room: &Room) -> Value {
    json!({
        "name": room.name,
        "uid": room.uid,
        "description": room.description,
        "category": snapshot.category(room.category).map(|c| c.name.clone()),
        "privacy": room.privacy.to_string(),
        "type": room.kind.to_string(),
        "invitations": room.invitations.to_string(),
        "disabled": room.disabled,
        "addin": room.addin,
        "members": names(&room.members),
        "managers": names(&room.managers),
        "presenters": names(&room.presenters),
    })
}

/// `room list`'s filters, as query parameters.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RoomQuery {
    category: Option<String>,
    privacy: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    disabled: Option<bool>,
    /// Rooms whose member list names this principal (a user also through groups and
    /// domains).
    member: Option<String>,
    manager: Option<String>,
    addin: Option<String>,
    invitations: Option<String>,
    /// Rooms whose name contains this text (ignoring case).
    filter: Option<String>,
    #[serde(default)]
    search_description: bool,
    limit: Option<usize>,
}

async fn list_rooms(
    State(store): State<Arc<dyn Store>>,
    query: Result<axum::extract::Query<RoomQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let axum::extract::Query(query) =
        query.map_err(|rejection| ApiError(rejection.status(), rejection.body_text()))?;
    blocking(move || {
        let filter = RoomFilter {
            category: query.category,
            privacy: optional::<Privacy>("privacy", query.privacy.as_deref())?,
            kind: optional::<RoomType>("type", query.kind.as_deref())?,
            disabled: query.disabled,
            member: optional::<Principal>("principal", query.member.as_deref())?,
            manager: optional::<Principal>("principal", query.manager.as_deref())?,
            addin: query.addin,
            invitations: optional::<crate::core::model::Invitations>(
                "invitations",
                query.invitations.as_deref(),
            )?,
            text: query.filter,
            search_description: query.search_description,
            limit: query.limit,
        };
        let snapshot = snapshot(store.as_ref())?;
        let rooms: Vec<Value> = service::find_rooms(&snapshot, &Actor::Operator, &filter)?
            .into_iter()
            .map(|room| room_json(&snapshot, room))
            .collect();
        Ok((StatusCode::OK, Json(Value::Array(rooms))))
    })
    .await
}

async fn show_room(State(store): State<Arc<dyn Store>>, Path(name): Path<String>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let room = snapshot
            .room_by_name(&name)
            .ok_or_else(|| ServiceError::from(ManageError::NotFound(format!("room {name}"))))?;
        Ok((StatusCode::OK, Json(room_json(&snapshot, room))))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    name: String,
    category: String,
    description: Option<String>,
    privacy: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    managers: Vec<String>,
    #[serde(default)]
    presenters: Vec<String>,
}

fn parsed<T: std::str::FromStr<Err = String>>(what: &str, text: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|e: String| ApiError(StatusCode::BAD_REQUEST, format!("{what} {text:?}: {e}")))
}

/// An optional field parsed, its name in the error.
fn optional<T: std::str::FromStr<Err = String>>(
    what: &str,
    text: Option<&str>,
) -> Result<Option<T>, ApiError> {
    text.map(|t| parsed(what, t)).transpose()
}

fn principal_list(texts: &[String]) -> Result<Vec<Principal>, ApiError> {
    texts.iter().map(|t| parsed("principal", t)).collect()
}

fn principals(texts: &[String]) -> Result<Vec<ListEdit>, ApiError> {
    edits(&[], texts)
}

async fn create_room(State(store): State<Arc<dyn Store>>, body: Body<NewRoom>) -> ApiResult {
    let Json(new) = body?;
    blocking(move || {
        let change = RoomChange {
            name: Some(new.name),
            category: Some(new.category),
            description: new.description,
            privacy: optional::<Privacy>("privacy", new.privacy.as_deref())?,
            kind: optional::<RoomType>("type", new.kind.as_deref())?,
            members: principals(&new.members)?,
            managers: principals(&new.managers)?,
            presenters: principals(&new.presenters)?,
            ..RoomChange::default()
        };
        let snapshot = snapshot(store.as_ref())?;
        let saved = service::save_room(store.as_ref(), &snapshot, &Actor::Operator, None, change)?;
        let after = self::snapshot(store.as_ref())?;
        Ok((StatusCode::CREATED, Json(room_json(&after, &saved.room))))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RoomEdit {
    /// A new name.
    name: Option<String>,
    /// Move to this category: whoever it does not allow leaves the room (named in the
    /// answer's `removed`).
    category: Option<String>,
    description: Option<String>,
    privacy: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    add_members: Vec<String>,
    #[serde(default)]
    remove_members: Vec<String>,
    #[serde(default)]
    add_managers: Vec<String>,
    #[serde(default)]
    remove_managers: Vec<String>,
    #[serde(default)]
    add_presenters: Vec<String>,
    #[serde(default)]
    remove_presenters: Vec<String>,
    /// Say what the change would do without doing it.
    #[serde(default)]
    dry_run: bool,
}

/// Removals first, then additions, as `perch admin room set` applies them.
fn edits(remove: &[String], add: &[String]) -> Result<Vec<ListEdit>, ApiError> {
    let mut edits = Vec::new();
    if !remove.is_empty() {
        edits.push(ListEdit::Remove(principal_list(remove)?));
    }
    if !add.is_empty() {
        edits.push(ListEdit::Add(principal_list(add)?));
    }
    Ok(edits)
}

async fn change_room(
    State(store): State<Arc<dyn Store>>,
    Path(name): Path<String>,
    body: Body<RoomEdit>,
) -> ApiResult {
    let Json(edit) = body?;
    blocking(move || {
        let change = RoomChange {
            name: edit.name,
            category: edit.category,
            description: edit.description,
            privacy: optional::<Privacy>("privacy", edit.privacy.as_deref())?,
            kind: optional::<RoomType>("type", edit.kind.as_deref())?,
            members: edits(&edit.remove_members, &edit.add_members)?,
            managers: edits(&edit.remove_managers, &edit.add_managers)?,
            presenters: edits(&edit.remove_presenters, &edit.add_presenters)?,
            ..RoomChange::default()
        };
        let snapshot = snapshot(store.as_ref())?;
        let saved = if edit.dry_run {
            service::preview_room(&snapshot, &Actor::Operator, Some(&name), change)?
        } else {
            service::save_room(
                store.as_ref(),
                &snapshot,
                &Actor::Operator,
                Some(&name),
                change,
            )?
        };
        let mut answer = room_json(&snapshot, &saved.room);
        answer["removed"] = json!(names(&saved.removed));
        answer["invited"] = json!(saved.invited);
        answer["dry_run"] = json!(edit.dry_run);
        Ok((StatusCode::OK, Json(answer)))
    })
    .await
}

async fn set_disabled(store: Arc<dyn Store>, name: String, disabled: bool) -> ApiResult {
    blocking(move || {
        let change = RoomChange {
            disabled: Some(disabled),
            ..RoomChange::default()
        };
        let snapshot = snapshot(store.as_ref())?;
        let saved = service::save_room(
            store.as_ref(),
            &snapshot,
            &Actor::Operator,
            Some(&name),
            change,
        )?;
        Ok((StatusCode::OK, Json(room_json(&snapshot, &saved.room))))
    })
    .await
}

async fn disable_room(State(store): State<Arc<dyn Store>>, Path(name): Path<String>) -> ApiResult {
    set_disabled(store, name, true).await
}

async fn enable_room(State(store): State<Arc<dyn Store>>, Path(name): Path<String>) -> ApiResult {
    set_disabled(store, name, false).await
}

async fn remove_room(State(store): State<Arc<dyn Store>>, Path(name): Path<String>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let room = service::remove_room(store.as_ref(), &snapshot, &Actor::Operator, &name)?;
        Ok((StatusCode::OK, Json(json!({ "removed": room.name }))))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryEdit {
    /// A new name (for a change) or the name (to create).
    name: Option<String>,
    description: Option<String>,
    invitations: Option<bool>,
    file_upload: Option<bool>,
    chat_history: Option<bool>,
    #[serde(default)]
    add_allowed: Vec<String>,
    #[serde(default)]
    remove_allowed: Vec<String>,
    #[serde(default)]
    add_denied: Vec<String>,
    #[serde(default)]
    remove_denied: Vec<String>,
    #[serde(default)]
    add_creators: Vec<String>,
    #[serde(default)]
    remove_creators: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

impl CategoryEdit {
    fn change(self) -> Result<crate::core::manage::CategoryChange, ApiError> {
        Ok(crate::core::manage::CategoryChange {
            name: self.name,
            description: self.description,
            invitations: self.invitations,
            file_upload: self.file_upload,
            chat_history: self.chat_history,
            allowed: edits(&self.remove_allowed, &self.add_allowed)?,
            denied: edits(&self.remove_denied, &self.add_denied)?,
            creators: edits(&self.remove_creators, &self.add_creators)?,
        })
    }
}

fn saved_category_json(saved: &service::SavedCategory, dry_run: bool) -> Value {
    json!({
        "name": saved.category.name,
        "description": saved.category.description,
        "allowed": names(&saved.category.allowed),
        "denied": names(&saved.category.denied),
        "creators": names(&saved.category.creators),
        "removed": saved
            .purged
            .iter()
            .map(|(room, removed)| json!({ "room": room.name, "principals": names(removed) }))
            .collect::<Vec<_>>(),
        "dry_run": dry_run,
    })
}

async fn create_category(
    State(store): State<Arc<dyn Store>>,
    body: Body<CategoryEdit>,
) -> ApiResult {
    let Json(edit) = body?;
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let dry_run = edit.dry_run;
        let change = crate::core::manage::CategoryChange {
            invitations: Some(edit.invitations.unwrap_or(true)),
            file_upload: Some(edit.file_upload.unwrap_or(true)),
            chat_history: Some(edit.chat_history.unwrap_or(true)),
            ..edit.change()?
        };
        let saved = if dry_run {
            service::preview_category(&snapshot, None, change)?
        } else {
            service::save_category(store.as_ref(), &snapshot, None, change)?
        };
        let status = if dry_run {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((status, Json(saved_category_json(&saved, dry_run))))
    })
    .await
}

async fn change_category(
    State(store): State<Arc<dyn Store>>,
    Path(name): Path<String>,
    body: Body<CategoryEdit>,
) -> ApiResult {
    let Json(edit) = body?;
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let dry_run = edit.dry_run;
        let change = edit.change()?;
        let saved = if dry_run {
            service::preview_category(&snapshot, Some(&name), change)?
        } else {
            service::save_category(store.as_ref(), &snapshot, Some(&name), change)?
        };
        Ok((StatusCode::OK, Json(saved_category_json(&saved, dry_run))))
    })
    .await
}

async fn remove_category(
    State(store): State<Arc<dyn Store>>,
    Path(name): Path<String>,
) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let removed = service::remove_category(store.as_ref(), &snapshot, &name)?;
        Ok((StatusCode::OK, Json(json!({ "removed": removed.name }))))
    })
    .await
}

async fn list_groups(State(store): State<Arc<dyn Store>>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let mut groups: Vec<_> = snapshot.directory.groups().collect();
        groups.sort_by_key(|g| g.name.to_lowercase());
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|g| json!({ "name": g.name, "description": g.description, "members": names(&g.members) }))
            .collect();
        Ok((StatusCode::OK, Json(Value::Array(groups))))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
    description: Option<String>,
}

async fn add_group(State(store): State<Arc<dyn Store>>, body: Body<NewGroup>) -> ApiResult {
    let Json(new) = body?;
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let group = service::add_group(
            store.as_ref(),
            &snapshot,
            &new.name,
            new.description.as_deref(),
        )?;
        Ok((StatusCode::CREATED, Json(json!({ "name": group.name }))))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEdit {
    #[serde(default)]
    add_members: Vec<String>,
    #[serde(default)]
    remove_members: Vec<String>,
}

async fn edit_group(
    State(store): State<Arc<dyn Store>>,
    Path(name): Path<String>,
    body: Body<GroupEdit>,
) -> ApiResult {
    let Json(edit) = body?;
    blocking(move || {
        let (remove, add) = (
            principal_list(&edit.remove_members)?,
            principal_list(&edit.add_members)?,
        );
        let mut group = None;
        for (listed, adding) in [(remove, false), (add, true)] {
            if !listed.is_empty() {
                let snapshot = snapshot(store.as_ref())?;
                group = Some(service::edit_group_members(
                    store.as_ref(),
                    &snapshot,
                    &name,
                    listed,
                    adding,
                )?);
            }
        }
        let snapshot = snapshot(store.as_ref())?;
        let group = match group {
            Some(group) => group,
            None => snapshot.directory.group(&name).cloned().ok_or_else(|| {
                ServiceError::from(ManageError::NotFound(format!("group {name}")))
            })?,
        };
        Ok((
            StatusCode::OK,
            Json(json!({ "name": group.name, "description": group.description, "members": names(&group.members) })),
        ))
    })
    .await
}

async fn remove_group(State(store): State<Arc<dyn Store>>, Path(name): Path<String>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let group = service::remove_group(store.as_ref(), &snapshot, &name)?;
        Ok((StatusCode::OK, Json(json!({ "removed": group.name }))))
    })
    .await
}

async fn list_policies(State(store): State<Arc<dyn Store>>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let policies: Vec<Value> = snapshot
            .directory
            .policies()
            .map(|(scope, enabled)| json!({ "scope": scope.to_string(), "enabled": enabled }))
            .collect();
        Ok((StatusCode::OK, Json(Value::Array(policies))))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    /// global, group:NAME or sip:user@domain.
    scope: String,
    enabled: bool,
}

async fn set_policy(State(store): State<Arc<dyn Store>>, body: Body<Policy>) -> ApiResult {
    let Json(policy) = body?;
    blocking(move || {
        let scope = parsed::<crate::core::model::PolicyScope>("scope", &policy.scope)?;
        let snapshot = snapshot(store.as_ref())?;
        let scope = service::set_policy(store.as_ref(), &snapshot, scope, policy.enabled)?;
        Ok((
            StatusCode::OK,
            Json(json!({ "scope": scope.to_string(), "enabled": policy.enabled })),
        ))
    })
    .await
}

async fn remove_policy(
    State(store): State<Arc<dyn Store>>,
    Path(scope): Path<String>,
) -> ApiResult {
    blocking(move || {
        let scope = parsed::<crate::core::model::PolicyScope>("scope", &scope)?;
        let snapshot = snapshot(store.as_ref())?;
        let scope = service::remove_policy(store.as_ref(), &snapshot, scope)?;
        Ok((
            StatusCode::OK,
            Json(json!({ "removed": scope.to_string() })),
        ))
    })
    .await
}

async fn list_addins(State(store): State<Arc<dyn Store>>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let addins: Vec<Value> = snapshot
            .addins()
            .into_iter()
            .map(|a| json!({ "name": a.name, "url": a.url }))
            .collect();
        Ok((StatusCode::OK, Json(Value::Array(addins))))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAddin {
    name: String,
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddinUrl {
    url: String,
}

async fn save_addin(store: Arc<dyn Store>, name: String, url: String, create: bool) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let addin = service::save_addin(store.as_ref(), &snapshot, &name, &url, create)?;
        let status = if create {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((
            status,
            Json(json!({ "name": addin.name, "url": addin.url })),
        ))
    })
    .await
}

async fn create_addin(State(store): State<Arc<dyn Store>>, body: Body<NewAddin>) -> ApiResult {
    let Json(new) = body?;
    save_addin(store, new.name, new.url, true).await
}

async fn change_addin(
    State(store): State<Arc<dyn Store>>,
    Path(name): Path<String>,
    body: Body<AddinUrl>,
) -> ApiResult {
    let Json(change) = body?;
    save_addin(store, name, change.url, false).await
}

async fn remove_addin(State(store): State<Arc<dyn Store>>, Path(name): Path<String>) -> ApiResult {
    blocking(move || {
        let snapshot = snapshot(store.as_ref())?;
        let (addin, rooms) = service::remove_addin(store.as_ref(), &snapshot, &name)?;
        Ok((
            StatusCode::OK,
            Json(json!({ "removed": addin.name, "rooms": rooms })),
        ))
    })
    .await
}

async fn user_preferences(
    State(store): State<Arc<dyn Store>>,
    Path(uri): Path<String>,
) -> ApiResult {
    blocking(move || {
        let entries: Vec<Value> = service::preferences(store.as_ref(), &uri)?
            .into_iter()
            .map(|e| json!({ "label": e.label, "version": e.seqid, "bytes": e.bytes }))
            .collect();
        Ok((StatusCode::OK, Json(Value::Array(entries))))
    })
    .await
}

async fn clear_user_preferences(
    State(store): State<Arc<dyn Store>>,
    Path(uri): Path<String>,
) -> ApiResult {
    blocking(move || {
        let (aor, removed) = service::clear_preferences(store.as_ref(), &uri)?;
        Ok((
            StatusCode::OK,
            Json(json!({ "user": format!("sip:{aor}"), "removed": removed })),
        ))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Clear {
    /// RFC 3339: messages up to and including this time; all of them without.
    until: Option<String>,
}

async fn clear_room(
    State(store): State<Arc<dyn Store>>,
    Path(name): Path<String>,
    body: Body<Clear>,
) -> ApiResult {
    let Json(clear) = body?;
    blocking(move || {
        let until = clear
            .until
            .as_deref()
            .map(crate::core::ids::ticks_from_rfc3339)
            .transpose()
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
        let snapshot = snapshot(store.as_ref())?;
        let (room, deleted) =
            service::clear_room(store.as_ref(), &snapshot, &Actor::Operator, &name, until)?;
        Ok((
            StatusCode::OK,
            Json(json!({ "room": room.name, "deleted": deleted })),
        ))
    })
    .await
}
