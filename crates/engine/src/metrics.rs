//! Counters and latency histograms per channel and destination, rendered in the Prometheus
//! text format (version 0.0.4).
//!
//! Plain atomics: a message costs a few relaxed increments, and the exposition format is a
//! dozen lines, not worth a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::pipeline::Pipeline;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, bound) in self.buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// Counters of one destination.
#[derive(Debug, Default)]
pub struct DestinationMetrics {
    /// The destination's name.
    pub name: String,
    /// Messages sent.
    pub sent: Counter,
    /// Messages its filter rejected.
    pub filtered: Counter,
    /// Messages that ended in ERROR here.
    pub errored: Counter,
    /// Failed attempts that will be retried.
    pub retried: Counter,
    /// Time from enqueue to a successful send.
    pub latency: Histogram,
}

/// Counters of one channel.
#[derive(Debug, Default)]
pub struct ChannelMetrics {
    /// Messages received.
    pub received: Counter,
    /// Messages the source filter rejected.
    pub filtered: Counter,
    /// Messages in ERROR after source processing.
    pub errored: Counter,
    /// Messages processed by the source side.
    pub processed: Counter,
    /// Source-side processing time per message.
    pub processing: Histogram,
    /// Per destination, by number - 1.
    pub destinations: Vec<DestinationMetrics>,
}

impl ChannelMetrics {
    /// Destination `n`'s counters.
    pub fn destination(&self, n: store::Destination) -> Option<&DestinationMetrics> {
        self.destinations.get(usize::from(n).wrapping_sub(1))
    }
}

/// Every channel's metrics. A redeployed channel keeps counting where it was.
#[derive(Debug, Default)]
pub struct Metrics {
    channels: RwLock<BTreeMap<String, Arc<ChannelMetrics>>>,
}

/// A snapshot of a channel's counters, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStats {
    /// Received.
    pub received: u64,
    /// Filtered at the source.
    pub filtered: u64,
    /// In ERROR at the source.
    pub errored: u64,
    /// Per destination.
    pub destinations: Vec<DestinationStats>,
}

/// A snapshot of a destination's counters.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationStats {
    /// Name.
    pub name: String,
    /// Sent.
    pub sent: u64,
    /// Filtered.
    pub filtered: u64,
    /// In ERROR.
    pub errored: u64,
    /// Retried attempts.
    pub retried: u64,
}

impl Metrics {
    /// The metrics of a channel being deployed (kept if its destinations are the same).
    pub(crate) fn channel(&self, name: &str, pipeline: &Pipeline) -> Arc<ChannelMetrics> {
        let mut map = self.channels.write().expect("lock");
        if let Some(m) = map.get(name)
            && m.destinations.len() == pipeline.destinations.len()
            && m.destinations
                .iter()
                .zip(&pipeline.destinations)
                .all(|(a, b)| a.name == b.name)
        {
            return Arc::clone(m);
        }
        let m = Arc::new(ChannelMetrics {
            destinations: pipeline
                .destinations
                .iter()
                .map(|d| DestinationMetrics {
                    name: d.name.clone(),
                    ..DestinationMetrics::default()
                })
                .collect(),
            ..ChannelMetrics::default()
        });
        map.insert(name.to_owned(), Arc::clone(&m));
        m
    }

    pub(crate) fn remove_channel(&self, name: &str) {
        self.channels.write().expect("lock").remove(name);
    }

    /// A channel's counters.
    pub fn stats(&self, name: &str) -> Option<ChannelStats> {
        let map = self.channels.read().expect("lock");
        let m = map.get(name)?;
        Some(ChannelStats {
            received: m.received.get(),
            filtered: m.filtered.get(),
            errored: m.errored.get(),
            destinations: m
                .destinations
                .iter()
                .map(|d| DestinationStats {
                    name: d.name.clone(),
                    sent: d.sent.get(),
                    filtered: d.filtered.get(),
                    errored: d.errored.get(),
                    retried: d.retried.get(),
                })
                .collect(),
        })
    }

    /// The Prometheus text exposition; `depths` are queue depths by (channel, destination).
    pub fn render(&self, depths: &[(String, String, u64)]) -> String {
        let map = self.channels.read().expect("lock");
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
        let per_channel = |f: fn(&ChannelMetrics) -> u64| {
            map.iter()
                .map(|(c, m)| (format!("channel=\"{}\"", esc(c)), f(m)))
                .collect::<Vec<_>>()
        };
        let per_dest = |f: fn(&DestinationMetrics) -> u64| {
            map.iter()
                .flat_map(|(c, m)| {
                    m.destinations.iter().map(move |d| {
                        (
                            format!("channel=\"{}\",destination=\"{}\"", esc(c), esc(&d.name)),
                            f(d),
                        )
                    })
                })
                .collect::<Vec<_>>()
        };
        counter(
            "plexus_messages_received_total",
            "Messages received by the channel's source.",
            per_channel(|m| m.received.get()),
        );
        counter(
            "plexus_messages_filtered_total",
            "Messages the source filter rejected.",
            per_channel(|m| m.filtered.get()),
        );
        counter(
            "plexus_messages_errored_total",
            "Messages in ERROR after source processing.",
            per_channel(|m| m.errored.get()),
        );
        counter(
            "plexus_destination_sent_total",
            "Messages a destination sent.",
            per_dest(|d| d.sent.get()),
        );
        counter(
            "plexus_destination_filtered_total",
            "Messages a destination filter rejected.",
            per_dest(|d| d.filtered.get()),
        );
        counter(
            "plexus_destination_errored_total",
            "Messages that ended in ERROR at a destination.",
            per_dest(|d| d.errored.get()),
        );
        counter(
            "plexus_destination_retries_total",
            "Failed delivery attempts that were retried.",
            per_dest(|d| d.retried.get()),
        );
        let _ = writeln!(
            out,
            "# HELP plexus_queue_depth Messages waiting in a destination queue.\n# TYPE plexus_queue_depth gauge"
        );
        for (c, d, v) in depths {
            let _ = writeln!(
                out,
                "plexus_queue_depth{{channel=\"{}\",destination=\"{}\"}} {v}",
                esc(c),
                esc(d)
            );
        }
        let _ = writeln!(
            out,
            "# HELP plexus_processing_seconds Source-side processing time per message.\n# TYPE plexus_processing_seconds histogram"
        );
        for (c, m) in map.iter() {
            histogram(
                &mut out,
                "plexus_processing_seconds",
                &format!("channel=\"{}\"", esc(c)),
                &m.processing,
            );
        }
        let _ = writeln!(
            out,
            "# HELP plexus_delivery_seconds Time from enqueue to successful send.\n# TYPE plexus_delivery_seconds histogram"
        );
        for (c, m) in map.iter() {
            for d in &m.destinations {
                histogram(
                    &mut out,
                    "plexus_delivery_seconds",
                    &format!("channel=\"{}\",destination=\"{}\"", esc(c), esc(&d.name)),
                    &d.latency,
                );
            }
        }
        out
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (b, bound) in h.buckets.iter().zip(BUCKETS) {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"{bound}\"}} {}",
            b.load(Ordering::Relaxed)
        );
    }
    let count = h.count.load(Ordering::Relaxed);
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    #[allow(clippy::cast_precision_loss)] // a sum of microseconds fits an f64 well enough
    let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// Escapes a Prometheus label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
