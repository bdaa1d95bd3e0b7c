//! The security tables on SQLite: writes through the writer thread (so `take_grant`'s
//! `DELETE … RETURNING` runs one at a time with every other write), reads on the read
//! connections.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::error::{Result, StoreError};
use crate::security::{
    ClientRecord, Grant, Security, UserRecord, check_nonempty, json_from_text, roles_from_text,
    roles_to_text,
};
use crate::time::Timestamp;

const USER_COLUMNS: &str = "name, password_hash, roles, fhir_user, disabled, created";
const GRANT_COLUMNS: &str = "kind, key, subject, family, payload, expires";

fn user_row(op: &'static str) -> impl Fn(&Row<'_>) -> rusqlite::Result<Result<UserRecord>> {
    move |r| {
        let roles: String = r.get(2)?;
        Ok(Ok(UserRecord {
            name: r.get(0)?,
            password_hash: r.get(1)?,
            roles: match roles_from_text(op, roles) {
                Ok(roles) => roles,
                Err(e) => return Ok(Err(e)),
            },
            fhir_user: r.get(3)?,
            disabled: r.get(4)?,
            created: Timestamp::from_micros(r.get(5)?),
        }))
    }
}

fn client_row(op: &'static str) -> impl Fn(&Row<'_>) -> rusqlite::Result<Result<ClientRecord>> {
    move |r| {
        let (client_id, config, created): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok(
            json_from_text(op, "security_client.config", config).map(|config| ClientRecord {
                client_id,
                config,
                created: Timestamp::from_micros(created),
            }),
        )
    }
}

fn grant_row(op: &'static str) -> impl Fn(&Row<'_>) -> rusqlite::Result<Result<Grant>> {
    move |r| {
        let payload: String = r.get(4)?;
        let (kind, key, subject, family, expires): (String, String, String, Option<String>, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(5)?);
        Ok(
            json_from_text(op, "security_grant.payload", payload).map(|payload| Grant {
                kind,
                key,
                subject,
                family,
                payload,
                expires: Timestamp::from_micros(expires),
            }),
        )
    }
}

fn collect<T>(
    op: &'static str,
    rows: impl Iterator<Item = rusqlite::Result<Result<T>>>,
) -> Result<Vec<T>> {
    rows.map(|r| r.map_err(StoreError::sqlite(op))?).collect()
}

fn put_user(conn: &Connection, user: &UserRecord) -> Result<()> {
    const OP: &str = "put_user";
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO security_user ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            user.name,
            user.password_hash,
            roles_to_text(&user.roles),
            user.fhir_user,
            user.disabled,
            user.created.as_micros(),
        ])
    })
    .map_err(StoreError::sqlite(OP))?;
    Ok(())
}

fn put_client(conn: &Connection, client: &ClientRecord) -> Result<()> {
    const OP: &str = "put_client";
    conn.prepare_cached(
        "INSERT OR REPLACE INTO security_client (client_id, config, created) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut s| {
        s.execute(params![
            client.client_id,
            client.config.to_string(),
            client.created.as_micros(),
        ])
    })
    .map_err(StoreError::sqlite(OP))?;
    Ok(())
}

fn put_grant(conn: &Connection, grant: &Grant, now: Timestamp) -> Result<bool> {
    const OP: &str = "put_grant";
    // An unexpired grant with this key stays; an expired one is replaced.
    let changed = conn
        .prepare_cached(&format!(
            "INSERT INTO security_grant ({GRANT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (kind, key) DO UPDATE SET subject = excluded.subject,
                 family = excluded.family, payload = excluded.payload, expires = excluded.expires
             WHERE security_grant.expires <= ?7"
        ))
        .and_then(|mut s| {
            s.execute(params![
                grant.kind,
                grant.key,
                grant.subject,
                grant.family,
                grant.payload.to_string(),
                grant.expires.as_micros(),
                now.as_micros(),
            ])
        })
        .map_err(StoreError::sqlite(OP))?;
    Ok(changed == 1)
}

fn take_grant(conn: &Connection, kind: &str, key: &str, now: Timestamp) -> Result<Option<Grant>> {
    const OP: &str = "take_grant";
    let taken = conn
        .prepare_cached(&format!(
            "DELETE FROM security_grant WHERE kind = ?1 AND key = ?2 RETURNING {GRANT_COLUMNS}"
        ))
        .and_then(|mut s| s.query_row(params![kind, key], grant_row(OP)).optional())
        .map_err(StoreError::sqlite(OP))?
        .transpose()?;
    Ok(taken.filter(|g| g.expires > now))
}

fn execute(
    conn: &Connection,
    op: &'static str,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<u64> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(p))
        .map(|n| n as u64)
        .map_err(StoreError::sqlite(op))
}

impl Security for SqliteStore {
    async fn put_user(&self, user: UserRecord) -> Result<()> {
        check_nonempty("put_user", "user name", &user.name)?;
        self.write("put_user", 0, move |conn| put_user(conn, &user))
            .await
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        const OP: &str = "user";
        let name = name.to_owned();
        self.readers
            .run(OP, move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM security_user WHERE name = ?1"
                ))
                .and_then(|mut s| s.query_row([&name], user_row(OP)).optional())
                .map_err(StoreError::sqlite(OP))?
                .transpose()
            })
            .await
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        const OP: &str = "users";
        self.readers
            .run(OP, move |conn| {
                let mut s = conn
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM security_user ORDER BY name"
                    ))
                    .map_err(StoreError::sqlite(OP))?;
                let rows = s
                    .query_map([], user_row(OP))
                    .map_err(StoreError::sqlite(OP))?;
                collect(OP, rows)
            })
            .await
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write("delete_user", 0, move |conn| {
            execute(
                conn,
                "delete_user",
                "DELETE FROM security_user WHERE name = ?1",
                [&name],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn put_client(&self, client: ClientRecord) -> Result<()> {
        check_nonempty("put_client", "client id", &client.client_id)?;
        self.write("put_client", 0, move |conn| put_client(conn, &client))
            .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        const OP: &str = "client";
        let id = client_id.to_owned();
        self.readers
            .run(OP, move |conn| {
                conn.prepare_cached(
                    "SELECT client_id, config, created FROM security_client WHERE client_id = ?1",
                )
                .and_then(|mut s| s.query_row([&id], client_row(OP)).optional())
                .map_err(StoreError::sqlite(OP))?
                .transpose()
            })
            .await
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>> {
        const OP: &str = "clients";
        self.readers
            .run(OP, move |conn| {
                let mut s = conn
                    .prepare_cached(
                        "SELECT client_id, config, created FROM security_client ORDER BY client_id",
                    )
                    .map_err(StoreError::sqlite(OP))?;
                let rows = s
                    .query_map([], client_row(OP))
                    .map_err(StoreError::sqlite(OP))?;
                collect(OP, rows)
            })
            .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        let id = client_id.to_owned();
        self.write("delete_client", 0, move |conn| {
            execute(
                conn,
                "delete_client",
                "DELETE FROM security_client WHERE client_id = ?1",
                [&id],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn put_grant(&self, grant: Grant) -> Result<bool> {
        check_nonempty("put_grant", "grant kind", &grant.kind)?;
        check_nonempty("put_grant", "grant key", &grant.key)?;
        let now = Timestamp::now();
        self.write("put_grant", 0, move |conn| put_grant(conn, &grant, now))
            .await
    }

    async fn take_grant(&self, kind: &str, key: &str, now: Timestamp) -> Result<Option<Grant>> {
        let (kind, key) = (kind.to_owned(), key.to_owned());
        self.write("take_grant", 0, move |conn| {
            take_grant(conn, &kind, &key, now)
        })
        .await
    }

    async fn grant(&self, kind: &str, key: &str, now: Timestamp) -> Result<Option<Grant>> {
        const OP: &str = "grant";
        let (kind, key) = (kind.to_owned(), key.to_owned());
        self.readers
            .run(OP, move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {GRANT_COLUMNS} FROM security_grant
                     WHERE kind = ?1 AND key = ?2 AND expires > ?3"
                ))
                .and_then(|mut s| {
                    s.query_row(params![kind, key, now.as_micros()], grant_row(OP))
                        .optional()
                })
                .map_err(StoreError::sqlite(OP))?
                .transpose()
            })
            .await
    }

    async fn grants_of(&self, kind: &str, subject: &str, now: Timestamp) -> Result<Vec<Grant>> {
        const OP: &str = "grants_of";
        let (kind, subject) = (kind.to_owned(), subject.to_owned());
        self.readers
            .run(OP, move |conn| {
                let mut s = conn
                    .prepare_cached(&format!(
                        "SELECT {GRANT_COLUMNS} FROM security_grant
                         WHERE kind = ?1 AND subject = ?2 AND expires > ?3
                         ORDER BY expires, key"
                    ))
                    .map_err(StoreError::sqlite(OP))?;
                let rows = s
                    .query_map(params![kind, subject, now.as_micros()], grant_row(OP))
                    .map_err(StoreError::sqlite(OP))?;
                collect(OP, rows)
            })
            .await
    }

    async fn delete_grant(&self, kind: &str, key: &str) -> Result<bool> {
        let (kind, key) = (kind.to_owned(), key.to_owned());
        self.write("delete_grant", 0, move |conn| {
            execute(
                conn,
                "delete_grant",
                "DELETE FROM security_grant WHERE kind = ?1 AND key = ?2",
                [&kind, &key],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn delete_family(&self, family: &str) -> Result<u64> {
        let family = family.to_owned();
        self.write("delete_family", 0, move |conn| {
            execute(
                conn,
                "delete_family",
                "DELETE FROM security_grant WHERE family = ?1",
                [&family],
            )
        })
        .await
    }

    async fn purge_grants(&self, now: Timestamp) -> Result<u64> {
        self.write("purge_grants", 0, move |conn| {
            execute(
                conn,
                "purge_grants",
                "DELETE FROM security_grant WHERE expires <= ?1",
                [now.as_micros()],
            )
        })
        .await
    }
}
