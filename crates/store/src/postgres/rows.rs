//! Reading PostgreSQL rows into the store's types, without panics on unexpected values.

use std::str::FromStr;
use std::time::SystemTime;

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::error::{Result, StoreError};
use crate::model::{
    Content, Destination, DestinationStatus, MessageSummary, QueueItem, QueueItemId,
    route_only_from_text,
};
use crate::time::Timestamp;

/// Column `idx` of `row`, or an error naming `op`.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize, op: &'static str) -> Result<T> {
    row.try_get(idx).map_err(StoreError::pg(op))
}

/// Parses a text column written by this crate; anything else means a damaged database.
pub(super) fn parse<T: FromStr>(
    op: &'static str,
    column: &'static str,
    value: String,
) -> Result<T> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt { op, column, value })
}

fn time(row: &Row, idx: usize, op: &'static str) -> Result<Timestamp> {
    get::<SystemTime>(row, idx, op).map(Timestamp::from)
}

fn destination(row: &Row, idx: usize, op: &'static str) -> Result<Destination> {
    let value: i32 = get(row, idx, op)?;
    Destination::try_from(value).map_err(|_| StoreError::Corrupt {
        op,
        column: "destination",
        value: value.to_string(),
    })
}

/// A row of `SUMMARY_COLUMNS`.
pub(super) fn summary(row: &Row, op: &'static str) -> Result<MessageSummary> {
    Ok(MessageSummary {
        id: parse(op, "messages.id", get(row, 0, op)?)?,
        channel: get(row, 1, op)?,
        received_at: time(row, 2, op)?,
        peer_addr: get(row, 3, op)?,
        tls_subject: get(row, 4, op)?,
        message_type: get(row, 5, op)?,
        trigger_event: get(row, 6, op)?,
        control_id: get(row, 7, op)?,
        sending_application: get(row, 8, op)?,
        sending_facility: get(row, 9, op)?,
        status: parse(op, "messages.status", get(row, 10, op)?)?,
        error: get(row, 11, op)?,
        original_id: get::<Option<String>>(row, 12, op)?
            .map(|id| parse(op, "messages.original_id", id))
            .transpose()?,
        route_only: get::<Option<String>>(row, 13, op)?
            .map(|text| {
                route_only_from_text(&text).ok_or(StoreError::Corrupt {
                    op,
                    column: "messages.route_only",
                    value: text,
                })
            })
            .transpose()?,
    })
}

/// A row of `ITEM_COLUMNS`.
pub(super) fn item(row: &Row, op: &'static str) -> Result<QueueItem> {
    let attempts: i32 = get(row, 4, op)?;
    Ok(QueueItem {
        id: QueueItemId(get(row, 0, op)?),
        queue: get(row, 1, op)?,
        message_id: parse(op, "queue_items.message_id", get(row, 2, op)?)?,
        destination: destination(row, 3, op)?,
        attempts: u32::try_from(attempts).map_err(|_| StoreError::Corrupt {
            op,
            column: "queue_items.attempts",
            value: attempts.to_string(),
        })?,
        available_at: time(row, 5, op)?,
        lease_owner: get(row, 6, op)?,
        lease_until: get::<Option<SystemTime>>(row, 7, op)?.map(Timestamp::from),
        state: parse(op, "queue_items.state", get(row, 8, op)?)?,
        last_error: get(row, 9, op)?,
    })
}

/// A row of `destination, stage, bytes, created_at`.
pub(super) fn content(row: &Row, op: &'static str) -> Result<Content> {
    Ok(Content {
        destination: destination(row, 0, op)?,
        stage: parse(op, "message_content.stage", get(row, 1, op)?)?,
        bytes: get(row, 2, op)?,
        created_at: time(row, 3, op)?,
    })
}

/// A row of `destination, name, status, error, updated_at`.
pub(super) fn destination_status(row: &Row, op: &'static str) -> Result<DestinationStatus> {
    Ok(DestinationStatus {
        destination: destination(row, 0, op)?,
        name: get(row, 1, op)?,
        status: parse(op, "message_destinations.status", get(row, 2, op)?)?,
        error: get(row, 3, op)?,
        updated_at: time(row, 4, op)?,
    })
}
