//! SQL shared by both backends: the journal columns, filter clauses and migration lists.

use crate::model::MessageFilter;
use crate::time::Timestamp;

/// Columns of a [`crate::MessageSummary`], in the order `row_to_summary` reads them.
pub(crate) const SUMMARY_COLUMNS: &str = "m.id, m.channel, m.received_at, m.peer_addr, \
     m.tls_subject, m.message_type, m.trigger_event, m.control_id, m.sending_application, \
     m.sending_facility, m.status, m.error, m.original_id, m.route_only";

/// Columns of a [`crate::QueueItem`], in the order `row_to_item` reads them.
pub(crate) const ITEM_COLUMNS: &str = "id, queue, message_id, destination, attempts, \
     available_at, lease_owner, lease_until, state, last_error";

/// A bound value of a filter query.
pub(crate) enum Param {
    Text(String),
    Time(Timestamp),
}

/// A `WHERE` clause (possibly empty) and its values.
pub(crate) struct Where {
    pub sql: String,
    pub params: Vec<Param>,
}

/// The condition on a control id where it is a column of `messages` with an index of its own
/// (PostgreSQL).
pub(crate) const CONTROL_ID_COLUMN: &str = "m.control_id = ?";

/// Builds the `WHERE` clause for `filter` over `messages m`; `placeholder(n)` spells the
/// n-th (1-based) parameter. `paging` adds the `before_id` condition. `control` is the
/// backend's condition on the control id: each of its `?` is bound to the control id sought.
pub(crate) fn filter_clause(
    filter: &MessageFilter,
    paging: bool,
    control: &str,
    placeholder: impl Fn(usize) -> String,
) -> Where {
    let mut conds: Vec<String> = Vec::new();
    let mut params = Vec::new();
    let mut push = |template: &str, values: Vec<Param>, conds: &mut Vec<String>| {
        // Templates hold one `?` per value and no other `?`.
        let mut parts = template.split('?');
        let mut sql = parts.next().unwrap_or_default().to_owned();
        for (part, value) in parts.zip(values) {
            params.push(value);
            sql.push_str(&placeholder(params.len()));
            sql.push_str(part);
        }
        conds.push(sql);
    };
    if let Some(t) = filter.received_from {
        push("m.received_at >= ?", vec![Param::Time(t)], &mut conds);
    }
    if let Some(t) = filter.received_to {
        push("m.received_at < ?", vec![Param::Time(t)], &mut conds);
    }
    let texts = [
        ("m.channel = ?", &filter.channel),
        ("m.message_type = ?", &filter.message_type),
        ("m.trigger_event = ?", &filter.trigger_event),
        (control, &filter.control_id),
    ];
    for (template, value) in texts {
        if let Some(v) = value {
            let values = template.matches('?').map(|_| Param::Text(v.clone()));
            push(template, values.collect(), &mut conds);
        }
    }
    if let Some(original) = filter.original_id {
        push(
            "m.original_id = ?",
            vec![Param::Text(original.to_string())],
            &mut conds,
        );
    }
    if let Some(status) = filter.status {
        push(
            "m.status = ?",
            vec![Param::Text(status.as_str().to_owned())],
            &mut conds,
        );
    }
    for (key, value) in &filter.metadata {
        push(
            // IN rather than a correlated EXISTS: the (key, value) index drives the search,
            // instead of a scan of every message testing each.
            "m.id IN (SELECT md.message_id FROM message_metadata md \
             WHERE md.key = ? AND md.value = ?)",
            vec![Param::Text(key.clone()), Param::Text(value.clone())],
            &mut conds,
        );
    }
    if paging && let Some(id) = filter.before_id {
        push("m.id < ?", vec![Param::Text(id.to_string())], &mut conds);
    }
    let sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    Where { sql, params }
}

/// One versioned schema change.
pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

/// SQLite migrations, oldest first.
pub(crate) const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_engine.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/sqlite/0003_fhir.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/sqlite/0004_security.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/sqlite/0005_audit.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/sqlite/0006_encryption.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/sqlite/0007_fhir_indexes.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/sqlite/0008_fhir_clustered.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../migrations/sqlite/0009_shared_content.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../migrations/sqlite/0010_check_constraints.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../migrations/sqlite/0011_batched_control_index.sql"),
    },
];

/// PostgreSQL migrations, oldest first.
pub(crate) const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/postgres/0002_engine.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/postgres/0003_fhir.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/postgres/0004_security.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/postgres/0005_audit.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/postgres/0006_encryption.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/postgres/0007_fhir_indexes.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/postgres/0008_fhir_clustered.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../migrations/postgres/0009_shared_content.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../migrations/postgres/0010_check_constraints.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../migrations/postgres/0011_batched_control_index.sql"),
    },
];

/// The newest version in `migrations`.
pub(crate) fn latest(migrations: &[Migration]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}

/// Sets a message's status from its destinations (see `Transition::refresh_status`); `{p}` is
/// the message id placeholder. PostgreSQL only: SQLite works the same rule out in
/// `sqlite::engine_ops::refresh_status`.
macro_rules! refresh_status_sql {
    ($p:literal) => {
        concat!(
            "UPDATE messages SET status = CASE \
               WHEN EXISTS (SELECT 1 FROM message_destinations d WHERE d.message_id = ",
            $p,
            " AND d.status = 'ERROR') THEN 'ERROR' \
               WHEN EXISTS (SELECT 1 FROM message_destinations d WHERE d.message_id = ",
            $p,
            " AND d.status IN ('RECEIVED', 'TRANSFORMED', 'QUEUED')) THEN 'QUEUED' \
               WHEN EXISTS (SELECT 1 FROM message_destinations d WHERE d.message_id = ",
            $p,
            " AND d.status = 'SENT') THEN 'SENT' \
               ELSE 'FILTERED' END, \
             error = coalesce((SELECT d.name || ': ' || d.error FROM message_destinations d \
               WHERE d.message_id = ",
            $p,
            " AND d.status = 'ERROR' ORDER BY d.destination LIMIT 1), error) \
             WHERE id = ",
            $p,
            " AND EXISTS (SELECT 1 FROM message_destinations d WHERE d.message_id = ",
            $p,
            ")"
        )
    };
}

/// [`refresh_status_sql`] for PostgreSQL.
pub(crate) const REFRESH_STATUS_PG: &str = refresh_status_sql!("$1::text");
/// [`refresh_status_sql`] for PostgreSQL, for every message whose id is in `$1`.
pub(crate) const REFRESH_STATUS_MANY_PG: &str = concat!(
    refresh_status_sql!("messages.id"),
    " AND messages.id = ANY($1::text[])"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    #[test]
    fn numbers_placeholders_in_order() {
        let f = MessageFilter {
            channel: Some("c".into()),
            status: Some(Status::Sent),
            metadata: vec![("MRN".into(), "1".into())],
            ..MessageFilter::default()
        };
        let w = filter_clause(&f, true, CONTROL_ID_COLUMN, |n| format!("${n}"));
        assert_eq!(
            w.sql,
            "WHERE m.channel = $1 AND m.status = $2 AND m.id IN (SELECT md.message_id \
             FROM message_metadata md WHERE md.key = $3 AND md.value = $4)"
        );
        assert_eq!(w.params.len(), 4);
        assert!(
            filter_clause(&MessageFilter::default(), true, CONTROL_ID_COLUMN, |n| {
                format!("?{n}")
            })
            .sql
            .is_empty()
        );
        let w = filter_clause(&f, false, CONTROL_ID_COLUMN, |n| format!("?{n}"));
        assert!(w.sql.contains("md.key = ?3 AND md.value = ?4"), "{}", w.sql);
        // a control condition with two placeholders is given the control id twice
        let f = MessageFilter {
            control_id: Some("C1".into()),
            status: Some(Status::Sent),
            ..MessageFilter::default()
        };
        let w = filter_clause(&f, false, "(m.a = ? OR m.b = ?)", |n| format!("?{n}"));
        assert_eq!(w.sql, "WHERE (m.a = ?1 OR m.b = ?2) AND m.status = ?3");
        assert!(
            matches!(&w.params[..], [Param::Text(a), Param::Text(b), Param::Text(_)] if a == "C1" && b == "C1")
        );
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        for list in [SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS] {
            for (version, m) in (1i64..).zip(list.iter()) {
                assert_eq!(m.version, version);
            }
        }
    }
}
