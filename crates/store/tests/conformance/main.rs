//! One conformance suite for every store backend: each case is an async function generic over
//! [`Backend`], instantiated by `conformance!` once for SQLite and once for PostgreSQL.

// The cases are plain async functions called by the generated tests, which clippy's
// allow-unwrap-in-tests does not see as tests.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod audit;
#[path = "../common/mod.rs"]
mod common;
mod encryption;
mod journal;
mod lifecycle;
mod ordered_queues;
mod postgres_only;
mod queues;
mod resources;
mod security;
mod source_side;
mod sqlite_only;
mod transitions;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, adt};
use store::{
    Destination, DestinationUpdate, Enqueue, Journal, MessageFilter, MessageId, NewMessage,
    QueueDepth, QueueItem, QueueState, Queues, Shared, Stage, Status, Store, StoreError,
    StoredMessage, Timestamp, Transition,
};

/// Instantiates every case for both backends, each on a fresh database.
macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let backend = <crate::common::Sqlite as crate::common::Backend>::create().await;
                    crate::cases::$case(&backend).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let backend = <crate::common::Postgres as crate::common::Backend>::create().await;
                    crate::cases::$case(&backend).await;
                }
            )+
        }
    };
}

conformance!(
    encrypted_messages_round_trip,
    encrypted_resources_search,
    encryption_rotation_reencrypts_old_rows,
    encryption_refuses_wrong_and_missing_keys,
    encryption_needs_an_empty_store,
    append_then_get_returns_exact_bytes_and_fields,
    get_unknown_id_is_none,
    append_refuses_bad_input,
    ids_unique_and_ordered_under_concurrent_appends,
    list_filters_each_field,
    list_pages_newest_first,
    metadata_search,
    control_id_and_metadata_search_find_every_message,
    set_status_and_put_content,
    unknown_ids_are_errors,
    enqueue_with_append_is_atomic,
    failing_request_does_not_fail_others,
    claim_ack_nack,
    lease_expiry_hands_item_over,
    dead_letters_and_requeue,
    concurrent_claimers_never_share_an_item,
    reopen_keeps_everything,
    migrations_are_idempotent,
    database_from_the_future_is_refused,
    closed_store_refuses_work,
    version_1_database_is_migrated_and_keeps_its_data,
    apply_writes_every_part_of_a_transition,
    apply_is_all_or_nothing,
    route_only_and_original_id_round_trip,
    original_id_filter_finds_reprocessed_copies,
    prunable_excludes_pending_work_and_respects_keep_last_and_older_than,
    delete_cascades_to_everything,
    prune_in_batches_while_appending,
    claim_head_keeps_fifo_order_across_nack_and_retry,
    claim_head_after_lease_expiry_keeps_order,
    claim_head_by_the_same_owner_renews_its_lease,
    concurrent_claim_head_never_overlaps,
    held_head_reads_the_prefix_leased_to_its_owner,
    extend_lease_renews_and_refuses_other_owners,
    queue_depth_and_names_count_each_state,
    refresh_status_follows_the_destinations,
    contents_reads_one_stage_of_many_messages,
    a_batch_of_deliveries_applies_whole_or_not_at_all,
    append_stores_the_source_side_in_one_write,
    leased_items_wait_for_their_lease,
    append_with_a_stored_id_stores_nothing,
    append_refuses_raw_content,
    shared_stages_read_as_stored,
    resource_versions_and_meta,
    resource_if_match_and_taken_ids,
    resource_several_creates_in_one_call,
    resource_multi_write_rolls_back_on_failure,
    resource_conditional_writes,
    resource_one_call_sees_its_own_index_rows,
    resource_concurrent_conditional_creates,
    resource_history_pages_newest_first,
    resource_search_strings_tokens_uris,
    part_parameters_read_the_whole_elements_rows,
    resource_search_dates_and_precision,
    resource_search_date_ranges,
    resource_search_numbers_and_quantities,
    resource_search_references_chains_has,
    resource_search_composites_and_missing,
    resource_search_derived_parameters,
    resource_search_sort_paging_totals,
    resource_search_includes,
    audit_append_chains_and_get_round_trips,
    audit_refuses_bad_records,
    audit_search_filters_and_pages,
    audit_concurrent_appends_form_one_chain,
    security_users_and_clients_round_trip,
    security_grants_single_use_and_replay,
    security_concurrent_take_gives_one_winner,
    security_families_listing_and_purge,
);

async fn open<B: Backend>(backend: &B) -> B::S {
    backend.open().await.expect("open the store")
}

/// Enqueues `n` messages on `queue` (destination 1), returning their ids in order.
async fn fill_queue<S: Store>(store: &S, queue: &str, n: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let m = adt("queued", &format!("Q{i}"), "1").enqueue_to(queue, 1);
        ids.push(store.append(m).await.unwrap());
    }
    ids
}

fn messages_of(items: &[QueueItem]) -> Vec<MessageId> {
    items.iter().map(|i| i.message_id).collect()
}

/// The generic cases, whichever file they live in.
mod cases {
    pub use super::audit::*;
    pub use super::encryption::*;
    pub use super::journal::*;
    pub use super::lifecycle::*;
    pub use super::ordered_queues::*;
    pub use super::queues::*;
    pub use super::resources::*;
    pub use super::security::*;
    pub use super::source_side::*;
    pub use super::transitions::*;
}
