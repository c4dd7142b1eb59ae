//! Schema migrations driven by `PRAGMA user_version`: migration N brings the schema from
//! version N-1 to N, each in its own transaction.

use rusqlite::Connection;

use crate::core::ports::StoreError;

/// The schema version these migrations bring a database to (SQLite's `user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_users.sql"),
    include_str!("migrations/0002_chat.sql"),
    include_str!("migrations/0003_message_parts.sql"),
    include_str!("migrations/0004_credentials.sql"),
    include_str!("migrations/0005_unlocks.sql"),
    include_str!("migrations/0006_search_by_room.sql"),
    include_str!("migrations/0007_admin_tokens.sql"),
    include_str!("migrations/0008_index_in_batches.sql"),
    include_str!("migrations/0009_ids_never_reused.sql"),
];

pub fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let current: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = connection.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "store: applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
