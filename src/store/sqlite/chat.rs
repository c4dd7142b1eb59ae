//! SQLite queries for the chat model (groups, policy, settings, categories, rooms, add-ins)
//! and for history, invitations and preferences.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::core::ids::Gateway;
use crate::core::model::{Addin, Category, Group, PolicyScope, Principal, Room};
use crate::core::ports::{
    ChatMessage, Extension, HistoryQuery, HistoryRange, ModelData, PreferenceEntry,
    PreferenceQuota, StoreError,
};

/// Principals from a query returning one text column. Rows were written from parsed
/// principals; one that no longer parses is skipped rather than failing the whole load.
fn principals(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Principal>, StoreError> {
    let mut statement = c.prepare_cached(sql)?;
    let texts = statement
        .query_map(params, |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(texts.iter().filter_map(|t| t.parse().ok()).collect())
}

fn replace_principals(
    c: &Connection,
    delete: &str,
    insert: &str,
    id: i64,
    kind: &str,
    list: &[Principal],
) -> Result<(), StoreError> {
    c.execute(delete, params![id, kind])?;
    let mut statement = c.prepare_cached(insert)?;
    for principal in list {
        statement.execute(params![id, kind, principal.to_string()])?;
    }
    Ok(())
}

const CATEGORY_PRINCIPALS: &str = "SELECT principal FROM category_principals WHERE category_id = ?1 AND list = ?2 ORDER BY principal";
const ROOM_PRINCIPALS: &str =
    "SELECT principal FROM room_principals WHERE room_id = ?1 AND role = ?2 ORDER BY principal";

fn listed(c: &Connection, sql: &str, id: i64, kind: &str) -> Result<Vec<Principal>, StoreError> {
    principals(c, sql, params![id, kind])
}

pub fn load_model(c: &Connection) -> Result<ModelData, StoreError> {
    let mut data = ModelData {
        users: super::all_users(c)?,
        ..ModelData::default()
    };

    let mut statement =
        c.prepare_cached("SELECT id, name, description FROM groups ORDER BY name")?;
    let groups: Vec<(i64, String, String)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (id, name, description) in groups {
        let members = principals(
            c,
            "SELECT principal FROM group_members WHERE group_id = ?1 ORDER BY principal",
            [id],
        )?;
        data.groups.push(Group {
            name,
            description,
            members,
        });
    }

    let mut statement = c.prepare_cached("SELECT scope, enabled FROM policies")?;
    data.policies = statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter_map(|(scope, enabled)| scope.parse().ok().map(|s| (s, enabled)))
        .collect();

    let mut statement = c.prepare_cached("SELECT name, value FROM settings")?;
    data.settings = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;

    let mut statement = c.prepare_cached(
        "SELECT id, name, description, invitations, file_upload, chat_history FROM categories ORDER BY name",
    )?;
    let categories: Vec<Category> = statement
        .query_map([], |r| {
            Ok(Category {
                id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                allowed: Vec::new(),
                denied: Vec::new(),
                creators: Vec::new(),
                invitations: r.get(3)?,
                file_upload: r.get(4)?,
                chat_history: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    for mut category in categories {
        category.allowed = listed(c, CATEGORY_PRINCIPALS, category.id, "allowed")?;
        category.denied = listed(c, CATEGORY_PRINCIPALS, category.id, "denied")?;
        category.creators = listed(c, CATEGORY_PRINCIPALS, category.id, "creators")?;
        data.categories.push(category);
    }

    let mut statement = c.prepare_cached("SELECT name, url FROM addins ORDER BY name")?;
    data.addins = statement
        .query_map([], |r| {
            Ok(Addin {
                name: r.get(0)?,
                url: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;

    let mut statement = c.prepare_cached(
        "SELECT id, uid, name, description, category_id, privacy, kind, invitations, disabled, addin
         FROM rooms ORDER BY name",
    )?;
    let rooms: Vec<Room> = statement
        .query_map([], room_from_row)?
        .collect::<Result<_, _>>()?;
    for mut room in rooms {
        room.members = listed(c, ROOM_PRINCIPALS, room.id, "member")?;
        room.managers = listed(c, ROOM_PRINCIPALS, room.id, "manager")?;
        room.presenters = listed(c, ROOM_PRINCIPALS, room.id, "presenter")?;
        data.rooms.push(room);
    }
    Ok(data)
}

fn room_from_row(r: &Row<'_>) -> rusqlite::Result<Room> {
    let text = |i: usize| r.get::<_, String>(i);
    let parse_error = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    Ok(Room {
        id: r.get(0)?,
        uid: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        category: r.get(4)?,
        privacy: text(5)?.parse().map_err(|e| parse_error(5, e))?,
        kind: text(6)?.parse().map_err(|e| parse_error(6, e))?,
        invitations: text(7)?.parse().map_err(|e| parse_error(7, e))?,
        disabled: r.get(8)?,
        addin: r.get(9)?,
        members: Vec::new(),
        managers: Vec::new(),
        presenters: Vec::new(),
    })
}

/// Turns a UNIQUE violation into a readable conflict.
fn unique(error: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Duplicate(what())
        }
        _ => error.into(),
    }
}

pub fn save_group(c: &Connection, group: &Group) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO groups (name, description) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET description = excluded.description",
        params![group.name, group.description],
    )?;
    let id: i64 = c.query_row(
        "SELECT id FROM groups WHERE name = ?1",
        [&group.name],
        |r| r.get(0),
    )?;
    c.execute("DELETE FROM group_members WHERE group_id = ?1", [id])?;
    let mut statement =
        c.prepare_cached("INSERT INTO group_members (group_id, principal) VALUES (?1, ?2)")?;
    for member in &group.members {
        statement.execute(params![id, member.to_string()])?;
    }
    Ok(())
}

pub fn remove_group(c: &Connection, name: &str) -> Result<(), StoreError> {
    if c.execute("DELETE FROM groups WHERE name = ?1", [name])? == 0 {
        return Err(StoreError::NotFound(format!("group {name}")));
    }
    Ok(())
}

pub fn set_policy(
    c: &Connection,
    scope: &PolicyScope,
    enabled: Option<bool>,
) -> Result<(), StoreError> {
    match enabled {
        Some(enabled) => c.execute(
            "INSERT INTO policies (scope, enabled) VALUES (?1, ?2)
             ON CONFLICT (scope) DO UPDATE SET enabled = excluded.enabled",
            params![scope.to_string(), enabled],
        )?,
        None => c.execute("DELETE FROM policies WHERE scope = ?1", [scope.to_string()])?,
    };
    Ok(())
}

pub fn set_setting(c: &Connection, name: &str, value: u32) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO settings (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )?;
    Ok(())
}

pub fn save_category(c: &Connection, mut category: Category) -> Result<Category, StoreError> {
    let name = category.name.clone();
    if category.id == 0 {
        c.execute(
            "INSERT INTO categories (name, description, invitations, file_upload, chat_history)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                category.name,
                category.description,
                category.invitations,
                category.file_upload,
                category.chat_history
            ],
        )
        .map_err(|e| unique(e, || format!("category {name}")))?;
        category.id = c.last_insert_rowid();
    } else {
        let changed = c
            .execute(
                "UPDATE categories SET name = ?2, description = ?3, invitations = ?4,
                 file_upload = ?5, chat_history = ?6 WHERE id = ?1",
                params![
                    category.id,
                    category.name,
                    category.description,
                    category.invitations,
                    category.file_upload,
                    category.chat_history
                ],
            )
            .map_err(|e| unique(e, || format!("category {name}")))?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("category {name}")));
        }
    }
    const DELETE: &str = "DELETE FROM category_principals WHERE category_id = ?1 AND list = ?2";
    const INSERT: &str = "INSERT OR IGNORE INTO category_principals (category_id, list, principal) VALUES (?1, ?2, ?3)";
    for (list, principals) in [
        ("allowed", &category.allowed),
        ("denied", &category.denied),
        ("creators", &category.creators),
    ] {
        replace_principals(c, DELETE, INSERT, category.id, list, principals)?;
    }
    Ok(category)
}

pub fn remove_category(c: &Connection, id: i64) -> Result<(), StoreError> {
    let rooms: i64 = c.query_row(
        "SELECT count(*) FROM rooms WHERE category_id = ?1",
        [id],
        |r| r.get(0),
    )?;
    if rooms > 0 {
        return Err(StoreError::Conflict(format!(
            "the category still has {rooms} room(s); remove or move them first"
        )));
    }
    if c.execute("DELETE FROM categories WHERE id = ?1", [id])? == 0 {
        return Err(StoreError::NotFound(format!("category #{id}")));
    }
    Ok(())
}

pub fn save_addin(c: &Connection, addin: &Addin) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO addins (name, url) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url",
        params![addin.name, addin.url],
    )?;
    Ok(())
}

pub fn remove_addin(c: &Connection, name: &str) -> Result<(), StoreError> {
    if c.execute("DELETE FROM addins WHERE name = ?1", [name])? == 0 {
        return Err(StoreError::NotFound(format!("add-in {name}")));
    }
    Ok(())
}

pub fn save_room(c: &Connection, mut room: Room) -> Result<Room, StoreError> {
    let name = room.name.clone();
    let values = params![
        room.uid,
        room.name,
        room.description,
        room.category,
        room.privacy.as_str(),
        room.kind.as_str(),
        room.invitations.as_str(),
        room.disabled,
        room.addin
    ];
    if room.id == 0 {
        c.execute(
            "INSERT INTO rooms (uid, name, description, category_id, privacy, kind, invitations, disabled, addin)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            values,
        )
        .map_err(|e| unique(e, || format!("room {name}")))?;
        room.id = c.last_insert_rowid();
    } else {
        let changed = c
            .execute(
                "UPDATE rooms SET name = ?2, description = ?3, category_id = ?4, privacy = ?5,
                 kind = ?6, invitations = ?7, disabled = ?8, addin = ?9 WHERE uid = ?1",
                values,
            )
            .map_err(|e| unique(e, || format!("room {name}")))?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("room {name}")));
        }
    }
    const DELETE: &str = "DELETE FROM room_principals WHERE room_id = ?1 AND role = ?2";
    const INSERT: &str =
        "INSERT OR IGNORE INTO room_principals (room_id, role, principal) VALUES (?1, ?2, ?3)";
    for (role, principals) in [
        ("member", &room.members),
        ("manager", &room.managers),
        ("presenter", &room.presenters),
    ] {
        replace_principals(c, DELETE, INSERT, room.id, role, principals)?;
    }
    Ok(room)
}

pub fn remove_room(c: &Connection, id: i64) -> Result<(), StoreError> {
    if c.execute("DELETE FROM rooms WHERE id = ?1", [id])? == 0 {
        return Err(StoreError::NotFound(format!("room #{id}")));
    }
    Ok(())
}

pub fn clear_room(c: &Connection, id: i64, until: Option<i64>) -> Result<usize, StoreError> {
    Ok(c.execute(
        "DELETE FROM messages WHERE room_id = ?1 AND ts <= ?2",
        params![id, until.unwrap_or(i64::MAX)],
    )?)
}

/// Adds the messages `ids` (posts of this batch) to the full-text index, in one statement:
/// FTS5 then writes one segment for the batch, not one per post (the writer's `Flush`;
/// migration 0008 dropped the per-row insert trigger).
pub fn index_messages(c: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
        return Ok(());
    };
    // A batch's posts are numbered in order, usually without gaps: a range then, else
    // the list itself.
    let contiguous = last - first + 1 == ids.len() as i64;
    if contiguous {
        c.prepare_cached(
            "INSERT INTO messages_fts (rowid, body, room_key)
             SELECT id, body, room_key FROM messages_fts_source WHERE id BETWEEN ?1 AND ?2",
        )?
        .execute(params![first, last])?;
    } else {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        c.prepare_cached(
            "INSERT INTO messages_fts (rowid, body, room_key)
             SELECT id, body, room_key FROM messages_fts_source
             WHERE id IN (SELECT value FROM json_each('[' || ?1 || ']'))",
        )?
        .execute([list])?;
    }
    Ok(())
}

pub fn append_message(c: &Connection, message: ChatMessage) -> Result<ChatMessage, StoreError> {
    let mut statement = c.prepare_cached(
        "INSERT INTO messages (id, room_id, author, ts, body, extra, extra_gateway)
         VALUES (\
            max((SELECT coalesce(max(id), 0) FROM messages),
                (SELECT last FROM id_floors WHERE name = 'messages')) + 1,
            ?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let (extra, gateway) = match &message.extension {
        Some(extension) => (extension.markup.as_str(), extension.gateway.name()),
        None => ("", Gateway::Lync.name()),
    };
    statement.execute(params![
        message.room_id,
        message.author,
        message.ts,
        message.text,
        extra,
        gateway
    ])?;
    Ok(ChatMessage {
        id: c.last_insert_rowid(),
        ..message
    })
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    let markup: String = r.get(5)?;
    let gateway: String = r.get(6)?;
    // Parts of a gateway this build does not know are left out, never shown raw.
    let extension = Gateway::from_name(&gateway)
        .filter(|_| !markup.is_empty())
        .map(|gateway| Extension { gateway, markup });
    Ok(ChatMessage {
        id: r.get(0)?,
        room_id: r.get(1)?,
        author: r.get(2)?,
        ts: r.get(3)?,
        text: r.get(4)?,
        extension,
    })
}

/// The words of a search as an FTS5 query on message bodies, in every room. Quotes each
/// word as an FTS5 string, so user input cannot inject query syntax. A word given again
/// (in any case: the index folds case) is left out: each costs a pass over its list of
/// matches and adds nothing.
pub fn fts_words(words: &[String]) -> String {
    let mut seen = std::collections::HashSet::new();
    words
        .iter()
        .filter(|w| seen.insert(w.to_lowercase()))
        .map(|w| format!("body : \"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// A search in one room: the room's own token in the index (see migration 0006) joins the
/// words, so FTS5 visits only that room's matches.
pub fn fts_query(room_id: i64, words: &[String]) -> String {
    format!("room_key : r{room_id} AND {}", fts_words(words))
}

/// A room's messages for a search: FTS5 walks the room's matches (the room is a term of
/// the query) newest first, within the room's first and last message ids (`rowid BETWEEN`
/// is handed to the index, which skips the rest of each list), and the LIMIT ends the walk. Ordered by the FTS rowid (the message id):
/// ordering by `m.id` made SQLite read and sort every match in the store first. The `+`
/// keeps the room check off the messages indexes, so FTS5 stays the outer loop.
const SEARCH: &str = "SELECT m.id, m.room_id, m.author, m.ts, m.body, m.extra, m.extra_gateway
     FROM messages_fts f JOIN messages m ON m.id = f.rowid
     WHERE messages_fts MATCH ?1 AND f.rowid BETWEEN ?2 AND ?3 AND +m.room_id = ?4
     ORDER BY f.rowid DESC LIMIT ?5";

/// A message's columns, read by `message_from_row`, from `messages m`.
const MESSAGE_COLUMNS: &str = "m.id, m.room_id, m.author, m.ts, m.body, m.extra, m.extra_gateway";

/// An archive page: `range`'s messages in id order (its own direction), searched for its
/// words through the full-text index when it has some, as [`SEARCH`] does.
fn range_page(
    c: &Connection,
    room_id: i64,
    range: &HistoryRange,
) -> Result<Vec<ChatMessage>, StoreError> {
    // ?1 room, ?2..=?3 ids, ?4..=?5 times, ?6 author (NULL: anyone), ?7 count, ?8 words.
    const FILTERS: &str = "m.ts >= ?4 AND m.ts <= ?5 AND (?6 IS NULL OR m.author = ?6)";
    let order = if range.newest { "DESC" } else { "ASC" };
    let (low, high) = (
        range.after.saturating_add(1),
        range.before.saturating_sub(1),
    );
    let (sql, low, high, words) = if range.words.is_empty() {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m
             WHERE m.room_id = ?1 AND m.id BETWEEN ?2 AND ?3 AND {FILTERS}
             ORDER BY m.id {order} LIMIT ?7"
        );
        (sql, low, high, None)
    } else {
        // The room's span bounds the walk, as in a plain search, narrowed by the page.
        let Some((first, last)) = room_span(c, room_id)? else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages_fts f JOIN messages m ON m.id = f.rowid
             WHERE messages_fts MATCH ?8 AND f.rowid BETWEEN ?2 AND ?3 AND +m.room_id = ?1
               AND {FILTERS}
             ORDER BY f.rowid {order} LIMIT ?7"
        );
        (
            sql,
            first.max(low),
            last.min(high),
            Some(fts_query(room_id, &range.words)),
        )
    };
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![
        &room_id,
        &low,
        &high,
        &range.since,
        &range.until,
        &range.author,
        &range.count,
    ];
    if let Some(words) = &words {
        params.push(words);
    }
    let mut s = c.prepare_cached(&sql)?;
    Ok(s.query_map(&params[..], message_from_row)?
        .collect::<Result<_, _>>()?)
}

/// The first and last message ids of a room; `None` when it has none.
fn room_span(c: &Connection, room_id: i64) -> Result<Option<(i64, i64)>, StoreError> {
    // Two subqueries, so each is one seek in `messages_by_room`: with both aggregates in
    // one SELECT, SQLite would scan the room's entries.
    let mut s = c.prepare_cached(
        "SELECT (SELECT min(id) FROM messages WHERE room_id = ?1),
                (SELECT max(id) FROM messages WHERE room_id = ?1)",
    )?;
    let (first, last): (Option<i64>, Option<i64>) =
        s.query_row([room_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(first.zip(last))
}

pub fn history(
    c: &Connection,
    room_id: i64,
    query: &HistoryQuery,
) -> Result<Vec<ChatMessage>, StoreError> {
    const COLUMNS: &str = "id, room_id, author, ts, body, extra, extra_gateway";
    let mut messages: Vec<ChatMessage> = match query {
        HistoryQuery::Last(count) => {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages WHERE room_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            s.query_map(params![room_id, count], message_from_row)?
                .collect::<Result<_, _>>()?
        }
        HistoryQuery::Before { id, count } => {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages WHERE room_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
            ))?;
            s.query_map(params![room_id, id, count], message_from_row)?
                .collect::<Result<_, _>>()?
        }
        HistoryQuery::After { id, count } => {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3"
            ))?;
            let mut ascending: Vec<ChatMessage> = s
                .query_map(params![room_id, id, count], message_from_row)?
                .collect::<Result<_, _>>()?;
            ascending.reverse();
            ascending
        }
        HistoryQuery::Range(range) => {
            let mut page = range_page(c, room_id, range)?;
            // Newest first here, as the other arms, for the reversal below.
            if !range.newest {
                page.reverse();
            }
            page
        }
        HistoryQuery::Search { words, count } => {
            if words.is_empty() {
                return Ok(Vec::new());
            }
            // An empty room is answered without touching the index.
            let Some((first, last)) = room_span(c, room_id)? else {
                return Ok(Vec::new());
            };
            let mut s = c.prepare_cached(SEARCH)?;
            s.query_map(
                params![fts_query(room_id, words), first, last, room_id, count],
                message_from_row,
            )?
            .collect::<Result<_, _>>()?
        }
    };
    messages.reverse();
    Ok(messages)
}

pub fn add_invitations(
    c: &Connection,
    invitations: &[(String, i64)],
    now: i64,
) -> Result<(), StoreError> {
    let mut s = c.prepare_cached(
        "INSERT INTO invitations (id, user, room_id, created_at) VALUES (\
            max((SELECT coalesce(max(id), 0) FROM invitations),
                (SELECT last FROM id_floors WHERE name = 'invitations')) + 1,
            ?1, ?2, ?3)",
    )?;
    for (user, room) in invitations {
        s.execute(params![user, room, now])?;
    }
    Ok(())
}

pub fn invitations(c: &Connection, user: &str, after: i64) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut s = c.prepare_cached(
        "SELECT id, room_id FROM invitations WHERE user = ?1 AND id > ?2 ORDER BY id LIMIT 500",
    )?;
    Ok(
        s.query_map(params![user, after], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
    )
}

pub fn invitations_after(
    c: &Connection,
    after: i64,
    limit: u32,
) -> Result<Vec<(i64, String, i64)>, StoreError> {
    let mut s = c.prepare_cached(
        "SELECT id, user, room_id FROM invitations WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    Ok(s.query_map(params![after, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?
    .collect::<Result<_, _>>()?)
}

pub fn preference(
    c: &Connection,
    user: &str,
    label: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    Ok(c.query_row(
        "SELECT seqid, content FROM preferences WHERE user = ?1 AND label = ?2",
        params![user, label],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

pub fn set_preference(
    c: &Connection,
    user: &str,
    label: &str,
    content: &str,
    quota: PreferenceQuota,
) -> Result<i64, StoreError> {
    let (others, other_bytes): (i64, i64) = c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(CAST(label AS BLOB)) + length(CAST(content AS BLOB))), 0)
         FROM preferences WHERE user = ?1 AND label != ?2",
        params![user, label],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if others as usize + 1 > quota.labels {
        return Err(StoreError::QuotaExceeded(format!(
            "at most {} preference labels per user",
            quota.labels
        )));
    }
    if other_bytes as usize + label.len() + content.len() > quota.bytes {
        return Err(StoreError::QuotaExceeded(format!(
            "at most {} bytes of preferences per user",
            quota.bytes
        )));
    }
    let seqid: i64 = c.query_row(
        "INSERT INTO preferences (user, label, seqid, content) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (user, label) DO UPDATE SET seqid = seqid + 1, content = excluded.content
         RETURNING seqid",
        params![user, label, content],
        |r| r.get(0),
    )?;
    Ok(seqid)
}

pub fn preferences(c: &Connection, user: &str) -> Result<Vec<PreferenceEntry>, StoreError> {
    let mut s = c.prepare_cached(
        "SELECT label, seqid, length(CAST(label AS BLOB)) + length(CAST(content AS BLOB))
         FROM preferences WHERE user = ?1 ORDER BY label",
    )?;
    Ok(s.query_map([user], |r| {
        Ok(PreferenceEntry {
            label: r.get(0)?,
            seqid: r.get(1)?,
            bytes: r.get::<_, i64>(2)? as usize,
        })
    })?
    .collect::<Result<_, _>>()?)
}

pub fn clear_preferences(c: &Connection, user: &str) -> Result<usize, StoreError> {
    Ok(c.execute("DELETE FROM preferences WHERE user = ?1", [user])?)
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;
    use crate::core::model::Room;

    fn store_with_rooms() -> (Connection, i64, i64) {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::configure(&c).unwrap();
        super::super::migrate::migrate(&mut c).unwrap();
        let category = save_category(&c, crate::core::fixtures::category("C", "x", true)).unwrap();
        let quiet = save_room(&c, Room::new("quiet", "Quiet", category.id)).unwrap();
        let busy = save_room(&c, Room::new("busy", "Busy", category.id)).unwrap();
        (c, quiet.id, busy.id)
    }

    fn post(c: &Connection, room_id: i64, text: &str) -> i64 {
        let message = ChatMessage {
            id: 0,
            room_id,
            author: "a@x".into(),
            ts: 0,
            text: text.into(),
            extension: None,
        };
        let id = append_message(c, message).unwrap().id;
        // As the store's writer does for each batch.
        index_messages(c, &[id]).unwrap();
        id
    }

    /// Virtual-machine steps the search statement took so far: SQLite steps once or more
    /// for every match FTS5 hands it, so this counts the matches a search looked at.
    fn search_steps(c: &Connection) -> i32 {
        c.prepare_cached(SEARCH)
            .unwrap()
            .get_status(StatementStatus::VmStep)
    }

    fn search(c: &Connection, room_id: i64, words: &[&str]) -> Vec<ChatMessage> {
        let query = HistoryQuery::Search {
            words: words.iter().map(|w| w.to_string()).collect(),
            count: 10,
        };
        history(c, room_id, &query).unwrap()
    }

    /// A room whose messages are few and recent is searched without walking the matches of
    /// another room's long history: the index reads only the room's span of ids.
    #[test]
    fn a_search_does_not_walk_other_rooms_matches() {
        let (c, quiet, busy) = store_with_rooms();
        c.execute_batch("BEGIN").unwrap();
        for n in 0..3000 {
            post(&c, busy, &format!("common chatter {n}"));
        }
        c.execute_batch("COMMIT").unwrap();
        let only = post(&c, quiet, "common news");
        let found = search(&c, quiet, &["common"]);
        assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [only]);
        let steps = search_steps(&c);
        assert!(
            steps < 500,
            "{steps} steps: the search walked the busy room's matches"
        );
        // The busy room is searched as before: newest first, ten of them.
        let busy_found = search(&c, busy, &["common", "COMMON", "chatter"]);
        assert_eq!(busy_found.len(), 10);
        assert_eq!(busy_found.last().unwrap().text, "common chatter 2999");
    }

    /// Rooms whose messages interleave (every room of a busy server): the quiet room's span
    /// of ids holds all of the busy room's, and still the search looks only at its own
    /// matches, since the room is a term of the query inside the index.
    #[test]
    fn a_search_is_restricted_to_its_room_inside_the_index() {
        let (c, quiet, busy) = store_with_rooms();
        let oldest = post(&c, quiet, "common news");
        c.execute_batch("BEGIN").unwrap();
        for n in 0..3000 {
            post(&c, busy, &format!("common chatter {n}"));
            if n % 100 == 0 {
                post(&c, quiet, &format!("quiet remark {n}"));
            }
        }
        c.execute_batch("COMMIT").unwrap();
        let before = search_steps(&c);
        let found = search(&c, quiet, &["common"]);
        assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [oldest]);
        let steps = search_steps(&c) - before;
        assert!(
            steps < 500,
            "{steps} steps: the search walked the busy room's matches"
        );
        // Deleting through the index keeps it consistent (the triggers pass the room too).
        c.execute("DELETE FROM messages WHERE room_id = ?1", [busy])
            .unwrap();
        c.execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap();
        assert_eq!(search(&c, quiet, &["common"]).len(), 1);
    }

    #[test]
    fn an_empty_room_is_answered_without_the_index() {
        let (c, quiet, busy) = store_with_rooms();
        post(&c, busy, "common");
        assert!(search(&c, quiet, &["common"]).is_empty());
        assert_eq!(search_steps(&c), 0);
    }

    #[test]
    fn repeated_words_are_one_term_of_the_query() {
        let words: Vec<String> = ["the", "The", "THE", "plan", "the"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert_eq!(fts_words(&words), "body : \"the\" AND body : \"plan\"");
        let quoted = vec!["a\"b".to_owned()];
        assert_eq!(fts_words(&quoted), "body : \"a\"\"b\"");
        assert_eq!(fts_query(7, &quoted), "room_key : r7 AND body : \"a\"\"b\"");
    }

    #[test]
    fn preferences_keep_to_the_quota() {
        let (c, _, _) = store_with_rooms();
        let quota = PreferenceQuota {
            labels: 2,
            bytes: 20,
        };
        assert_eq!(set_preference(&c, "u", "a", "12345", quota).unwrap(), 1);
        assert_eq!(set_preference(&c, "u", "b", "12345", quota).unwrap(), 1);
        let third = set_preference(&c, "u", "c", "1", quota).unwrap_err();
        assert!(
            third.to_string().contains("at most 2 preference labels"),
            "{third}"
        );
        // Replacing counts the new content instead of the old: 1+5 + 1+13 = 20 fits, 21 not.
        assert_eq!(
            set_preference(&c, "u", "b", "1234567890123", quota).unwrap(),
            2
        );
        let over = set_preference(&c, "u", "b", "12345678901234", quota).unwrap_err();
        assert!(over.to_string().contains("at most 20 bytes"), "{over}");
        // Counted in bytes, not characters.
        assert!(set_preference(&c, "u", "b", "ééééééé", quota).is_err());
        assert!(set_preference(&c, "v", "c", "1", quota).is_ok());
        let listed = preferences(&c, "u").unwrap();
        assert_eq!(
            listed,
            [
                PreferenceEntry {
                    label: "a".into(),
                    seqid: 1,
                    bytes: 6
                },
                PreferenceEntry {
                    label: "b".into(),
                    seqid: 2,
                    bytes: 14
                },
            ]
        );
        assert_eq!(clear_preferences(&c, "u").unwrap(), 2);
        assert!(preferences(&c, "u").unwrap().is_empty());
        assert_eq!(preferences(&c, "v").unwrap().len(), 1);
    }
}
