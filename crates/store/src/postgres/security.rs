//! The security tables on PostgreSQL: one statement per call; `take_grant` is one
//! `DELETE … RETURNING`, so of two nodes taking the same grant only one gets it.

use std::time::SystemTime;

use tokio_postgres::Row;

use super::PgStore;
use super::rows::get;
use crate::error::{Result, StoreError};
use crate::security::{
    ClientRecord, Grant, Security, UserRecord, check_nonempty, json_from_text, roles_from_text,
    roles_to_text,
};
use crate::time::Timestamp;

const USER_COLUMNS: &str = "name, password_hash, roles, fhir_user, disabled, created";
const GRANT_COLUMNS: &str = "kind, key, subject, family, payload, expires";

fn user(op: &'static str, r: &Row) -> Result<UserRecord> {
    Ok(UserRecord {
        name: get(r, 0, op)?,
        password_hash: get(r, 1, op)?,
        roles: roles_from_text(op, get(r, 2, op)?)?,
        fhir_user: get(r, 3, op)?,
        disabled: get(r, 4, op)?,
        created: get::<SystemTime>(r, 5, op)?.into(),
    })
}

fn client(op: &'static str, r: &Row) -> Result<ClientRecord> {
    Ok(ClientRecord {
        client_id: get(r, 0, op)?,
        config: json_from_text(op, "security_client.config", get(r, 1, op)?)?,
        created: get::<SystemTime>(r, 2, op)?.into(),
    })
}

fn grant(op: &'static str, r: &Row) -> Result<Grant> {
    Ok(Grant {
        kind: get(r, 0, op)?,
        key: get(r, 1, op)?,
        subject: get(r, 2, op)?,
        family: get(r, 3, op)?,
        payload: json_from_text(op, "security_grant.payload", get(r, 4, op)?)?,
        expires: get::<SystemTime>(r, 5, op)?.into(),
    })
}

impl PgStore {
    async fn sec_query(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let client = self.client(op).await?;
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(StoreError::pg(op))?;
        client
            .query(&stmt, params)
            .await
            .map_err(StoreError::pg(op))
    }

    async fn sec_execute(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        let client = self.client(op).await?;
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(StoreError::pg(op))?;
        let n = client
            .execute(&stmt, params)
            .await
            .map_err(StoreError::pg(op))?;
        self.committed(0);
        Ok(n)
    }
}

impl Security for PgStore {
    async fn put_user(&self, user: UserRecord) -> Result<()> {
        const OP: &str = "put_user";
        check_nonempty(OP, "user name", &user.name)?;
        self.sec_execute(
            OP,
            &format!(
                "INSERT INTO security_user ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,
                     roles = excluded.roles, fhir_user = excluded.fhir_user,
                     disabled = excluded.disabled, created = excluded.created"
            ),
            &[
                &user.name,
                &user.password_hash,
                &roles_to_text(&user.roles),
                &user.fhir_user,
                &user.disabled,
                &user.created.to_system_time(),
            ],
        )
        .await
        .map(drop)
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        const OP: &str = "user";
        let rows = self
            .sec_query(
                OP,
                &format!("SELECT {USER_COLUMNS} FROM security_user WHERE name = $1"),
                &[&name],
            )
            .await?;
        rows.first().map(|r| user(OP, r)).transpose()
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        const OP: &str = "users";
        let rows = self
            .sec_query(
                OP,
                &format!("SELECT {USER_COLUMNS} FROM security_user ORDER BY name"),
                &[],
            )
            .await?;
        rows.iter().map(|r| user(OP, r)).collect()
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        self.sec_execute(
            "delete_user",
            "DELETE FROM security_user WHERE name = $1",
            &[&name],
        )
        .await
        .map(|n| n > 0)
    }

    async fn put_client(&self, client: ClientRecord) -> Result<()> {
        const OP: &str = "put_client";
        check_nonempty(OP, "client id", &client.client_id)?;
        self.sec_execute(
            OP,
            "INSERT INTO security_client (client_id, config, created) VALUES ($1, $2, $3)
             ON CONFLICT (client_id) DO UPDATE SET config = excluded.config,
                 created = excluded.created",
            &[
                &client.client_id,
                &client.config.to_string(),
                &client.created.to_system_time(),
            ],
        )
        .await
        .map(drop)
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        const OP: &str = "client";
        let rows = self
            .sec_query(
                OP,
                "SELECT client_id, config, created FROM security_client WHERE client_id = $1",
                &[&client_id],
            )
            .await?;
        rows.first().map(|r| client(OP, r)).transpose()
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>> {
        const OP: &str = "clients";
        let rows = self
            .sec_query(
                OP,
                "SELECT client_id, config, created FROM security_client ORDER BY client_id",
                &[],
            )
            .await?;
        rows.iter().map(|r| client(OP, r)).collect()
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        self.sec_execute(
            "delete_client",
            "DELETE FROM security_client WHERE client_id = $1",
            &[&client_id],
        )
        .await
        .map(|n| n > 0)
    }

    async fn put_grant(&self, grant: Grant) -> Result<bool> {
        const OP: &str = "put_grant";
        check_nonempty(OP, "grant kind", &grant.kind)?;
        check_nonempty(OP, "grant key", &grant.key)?;
        // The database's clock decides what has expired, as for leases.
        let n = self
            .sec_execute(
                OP,
                &format!(
                    "INSERT INTO security_grant ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (kind, key) DO UPDATE SET subject = excluded.subject,
                         family = excluded.family, payload = excluded.payload,
                         expires = excluded.expires
                     WHERE security_grant.expires <= now()"
                ),
                &[
                    &grant.kind,
                    &grant.key,
                    &grant.subject,
                    &grant.family,
                    &grant.payload.to_string(),
                    &grant.expires.to_system_time(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn take_grant(&self, kind: &str, key: &str, now: Timestamp) -> Result<Option<Grant>> {
        const OP: &str = "take_grant";
        let rows = self
            .sec_query(
                OP,
                &format!(
                    "DELETE FROM security_grant WHERE kind = $1 AND key = $2
                     RETURNING {GRANT_COLUMNS}"
                ),
                &[&kind, &key],
            )
            .await?;
        self.committed(0);
        Ok(rows
            .first()
            .map(|r| grant(OP, r))
            .transpose()?
            .filter(|g| g.expires > now))
    }

    async fn grant(&self, kind: &str, key: &str, now: Timestamp) -> Result<Option<Grant>> {
        const OP: &str = "grant";
        let rows = self
            .sec_query(
                OP,
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM security_grant
                     WHERE kind = $1 AND key = $2 AND expires > $3"
                ),
                &[&kind, &key, &now.to_system_time()],
            )
            .await?;
        rows.first().map(|r| grant(OP, r)).transpose()
    }

    async fn grants_of(&self, kind: &str, subject: &str, now: Timestamp) -> Result<Vec<Grant>> {
        const OP: &str = "grants_of";
        let rows = self
            .sec_query(
                OP,
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM security_grant
                     WHERE kind = $1 AND subject = $2 AND expires > $3
                     ORDER BY expires, key"
                ),
                &[&kind, &subject, &now.to_system_time()],
            )
            .await?;
        rows.iter().map(|r| grant(OP, r)).collect()
    }

    async fn delete_grant(&self, kind: &str, key: &str) -> Result<bool> {
        self.sec_execute(
            "delete_grant",
            "DELETE FROM security_grant WHERE kind = $1 AND key = $2",
            &[&kind, &key],
        )
        .await
        .map(|n| n > 0)
    }

    async fn delete_family(&self, family: &str) -> Result<u64> {
        self.sec_execute(
            "delete_family",
            "DELETE FROM security_grant WHERE family = $1",
            &[&family],
        )
        .await
    }

    async fn purge_grants(&self, now: Timestamp) -> Result<u64> {
        self.sec_execute(
            "purge_grants",
            "DELETE FROM security_grant WHERE expires <= $1",
            &[&now.to_system_time()],
        )
        .await
    }
}
