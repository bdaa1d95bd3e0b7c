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
#[derive(Clone)]
pub(crate) enum Param {
    Text(String),
    Time(Timestamp),
}

/// A `WHERE` clause (possibly empty) and its values.
pub(crate) struct Where {
    pub sql: String,
    pub params: Vec<Param>,
}

/// How a backend finds messages by control id and by metadata pair: conditions over
/// `messages m` whose `?`s take the values sought in turn, starting again after the last
/// (the control id; the key and the value).
pub(crate) struct Lookups {
    pub control_id: &'static str,
    pub metadata: &'static str,
}

/// The lookups where the control id is a column of `messages` and the metadata table has an
/// index on `(key, value)` (PostgreSQL).
pub(crate) const INDEXED_COLUMNS: Lookups = Lookups {
    control_id: "m.control_id = ?",
    // IN rather than a correlated EXISTS: the (key, value) index drives the search, instead
    // of a scan of every message testing each.
    metadata: "m.id IN (SELECT md.message_id FROM message_metadata md \
               WHERE md.key = ? AND md.value = ?)",
};

/// Builds the `WHERE` clause for `filter` over `messages m`; `placeholder(n)` spells the
/// n-th (1-based) parameter. `paging` adds the `before_id` condition; `lookups` are the
/// backend's conditions on control ids and metadata.
pub(crate) fn filter_clause(
    filter: &MessageFilter,
    paging: bool,
    lookups: &Lookups,
    placeholder: impl Fn(usize) -> String,
) -> Where {
    let mut conds: Vec<String> = Vec::new();
    let mut params = Vec::new();
    let mut push = |template: &str, values: Vec<Param>, conds: &mut Vec<String>| {
        // Templates hold no `?` but placeholders; they take the values in turn, cycling.
        let mut parts = template.split('?');
        let mut sql = parts.next().unwrap_or_default().to_owned();
        for (part, value) in parts.zip(values.iter().cycle()) {
            params.push(value.clone());
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
        (lookups.control_id, &filter.control_id),
    ];
    for (template, value) in texts {
        if let Some(v) = value {
            push(template, vec![Param::Text(v.clone())], &mut conds);
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
            lookups.metadata,
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
    Migration {
        version: 12,
        sql: include_str!("../migrations/sqlite/0012_batched_metadata_index.sql"),
    },
    Migration {
        version: 13,
        sql: include_str!("../migrations/sqlite/0013_string_parts.sql"),
    },
    Migration {
        version: 14,
        sql: include_str!("../migrations/sqlite/0014_date_high_slow_rows.sql"),
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
    Migration {
        version: 12,
        sql: include_str!("../migrations/postgres/0012_batched_metadata_index.sql"),
    },
    Migration {
        version: 13,
        sql: include_str!("../migrations/postgres/0013_string_parts.sql"),
    },
    Migration {
        version: 14,
        sql: include_str!("../migrations/postgres/0014_date_high_slow_rows.sql"),
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
        let w = filter_clause(&f, true, &INDEXED_COLUMNS, |n| format!("${n}"));
        assert_eq!(
            w.sql,
            "WHERE m.channel = $1 AND m.status = $2 AND m.id IN (SELECT md.message_id \
             FROM message_metadata md WHERE md.key = $3 AND md.value = $4)"
        );
        assert_eq!(w.params.len(), 4);
        assert!(
            filter_clause(&MessageFilter::default(), true, &INDEXED_COLUMNS, |n| {
                format!("?{n}")
            })
            .sql
            .is_empty()
        );
        let w = filter_clause(&f, false, &INDEXED_COLUMNS, |n| format!("?{n}"));
        assert!(w.sql.contains("md.key = ?3 AND md.value = ?4"), "{}", w.sql);
        // placeholders take the values in turn, cycling
        let f = MessageFilter {
            control_id: Some("C1".into()),
            status: Some(Status::Sent),
            ..MessageFilter::default()
        };
        let twice = Lookups {
            control_id: "(m.a = ? OR m.b = ?)",
            metadata: "(m.k = ? AND m.v = ? OR m.k2 = ? AND m.v2 = ?)",
        };
        let texts = |w: &Where| -> Vec<String> {
            w.params
                .iter()
                .map(|p| match p {
                    Param::Text(t) => t.clone(),
                    Param::Time(_) => "time".to_owned(),
                })
                .collect()
        };
        let w = filter_clause(&f, false, &twice, |n| format!("?{n}"));
        assert_eq!(w.sql, "WHERE (m.a = ?1 OR m.b = ?2) AND m.status = ?3");
        assert_eq!(texts(&w), ["C1", "C1", "SENT"]);
        let f = MessageFilter {
            metadata: vec![("MRN".into(), "7".into())],
            ..MessageFilter::default()
        };
        let w = filter_clause(&f, false, &twice, |n| format!("?{n}"));
        assert_eq!(
            w.sql,
            "WHERE (m.k = ?1 AND m.v = ?2 OR m.k2 = ?3 AND m.v2 = ?4)"
        );
        assert_eq!(texts(&w), ["MRN", "7", "MRN", "7"]);
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
