//! Alerts: rules on errors, queue depth and stopped channels, checked periodically; a rule
//! that starts or stops firing is logged (warn) and, when it names a webhook, POSTed there as
//! JSON. Alerts carry names and counts, never message content.
//!
//! ```toml
//! [[alert]]
//! name = "adt errors"
//! channel = "adt-router"          # default: every channel
//! when = "errors"                 # errors | queue-depth | stopped
//! above = 5                       # errors: more than 5 new errors ...
//! within = "5m"                   # ... within 5 minutes
//! webhook = "http://127.0.0.1:9000/hook"
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{ChannelState, Engine};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// One alert rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Name shown in logs and webhook payloads.
    pub name: String,
    /// Only this channel (default: each channel separately).
    pub channel: Option<String>,
    /// What to watch.
    pub when: AlertKind,
    /// Threshold: errors in the window, or queued messages.
    #[serde(default)]
    pub above: u64,
    /// Window for `errors`. Default: 5 min.
    #[serde(default = "default_window", with = "mllp::duration")]
    pub within: Duration,
    /// URL that receives a JSON POST when the alert fires or resolves.
    pub webhook: Option<String>,
}

fn default_window() -> Duration {
    Duration::from_mins(5)
}

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// Messages that went to ERROR (source or destination).
    Errors,
    /// Messages waiting in one destination's queue.
    QueueDepth,
    /// A channel that is not started.
    Stopped,
}

/// An alert event, as logged and posted.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    /// The rule's name.
    pub alert: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// The channel concerned.
    pub channel: String,
    /// The rule kind.
    pub when: AlertKind,
    /// The value seen (errors in the window, queue depth, 1 for stopped).
    pub value: u64,
    /// The threshold.
    pub above: u64,
    /// When, RFC 3339.
    pub at: String,
}

/// Checks the rules every `every` until the engine is dropped; returns the task.
pub fn spawn(
    engine: &Arc<Engine>,
    rules: Vec<AlertConfig>,
    every: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if rules.is_empty() {
        return None;
    }
    let weak = Arc::downgrade(engine);
    Some(tokio::spawn(async move {
        let mut checker = Checker::new(rules);
        loop {
            tokio::time::sleep(every).await;
            let Some(engine) = weak.upgrade() else { break };
            for event in checker.check(&engine).await {
                warn!(alert = %event.alert, state = event.state, channel = %event.channel, value = event.value, above = event.above, "alert");
                if let Some(url) = checker.webhook(&event.alert) {
                    post(url, &event).await;
                }
            }
        }
    }))
}

/// Evaluates rules and remembers which are firing.
pub struct Checker {
    rules: Vec<AlertConfig>,
    firing: HashMap<(String, String), bool>,
    /// Error totals seen per channel, for windows.
    history: HashMap<String, VecDeque<(Instant, u64)>>,
}

impl Checker {
    /// A checker for `rules`.
    pub fn new(rules: Vec<AlertConfig>) -> Self {
        Self {
            rules,
            firing: HashMap::new(),
            history: HashMap::new(),
        }
    }

    fn webhook(&self, alert: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.name == alert)
            .and_then(|r| r.webhook.as_deref())
    }

    /// Evaluates every rule once; returns the alerts that started or stopped firing.
    pub async fn check(&mut self, engine: &Engine) -> Vec<AlertEvent> {
        self.check_at(engine, Instant::now()).await
    }

    /// [`Checker::check`] as if it were `now` (tests move the clock past a window).
    pub(crate) async fn check_at(&mut self, engine: &Engine, now: Instant) -> Vec<AlertEvent> {
        let depths = engine.queue_depths().await;
        let channels = engine.channels();
        let mut totals = HashMap::new();
        for ch in &channels {
            if let Some(s) = engine.metrics().stats(ch.name()) {
                let errors = s.errored + s.destinations.iter().map(|d| d.errored).sum::<u64>();
                totals.insert(ch.name().to_owned(), errors);
                let h = self.history.entry(ch.name().to_owned()).or_default();
                if h.is_empty() {
                    // the counters started at zero (engine start or first deployment): errors
                    // before the first check count as new ones
                    h.push_back((now, 0));
                }
                h.push_back((now, errors));
                let keep = self
                    .rules
                    .iter()
                    .map(|r| r.within)
                    .max()
                    .unwrap_or_default();
                while h.len() > 1
                    && h.front()
                        .is_some_and(|(t, _)| now.duration_since(*t) > keep)
                {
                    h.pop_front();
                }
            }
        }
        let mut events = Vec::new();
        for rule in &self.rules {
            for ch in &channels {
                if rule.channel.as_deref().is_some_and(|c| c != ch.name()) {
                    continue;
                }
                let value = match rule.when {
                    AlertKind::Stopped => u64::from(ch.state() != ChannelState::Started),
                    AlertKind::QueueDepth => depths
                        .iter()
                        .filter(|(c, _, _)| c == ch.name())
                        .map(|(_, _, d)| *d)
                        .max()
                        .unwrap_or(0),
                    AlertKind::Errors => {
                        let total = totals.get(ch.name()).copied().unwrap_or(0);
                        let base = self
                            .history
                            .get(ch.name())
                            .and_then(|h| {
                                h.iter()
                                    .find(|(t, _)| now.duration_since(*t) <= rule.within)
                                    .map(|(_, v)| *v)
                            })
                            .unwrap_or(total);
                        total - base.min(total)
                    }
                };
                let fire = value > rule.above;
                let key = (rule.name.clone(), ch.name().to_owned());
                let was = self.firing.insert(key, fire).unwrap_or(false);
                if fire != was {
                    events.push(AlertEvent {
                        alert: rule.name.clone(),
                        state: if fire { "firing" } else { "resolved" },
                        channel: ch.name().to_owned(),
                        when: rule.when,
                        value,
                        above: rule.above,
                        at: store::Timestamp::now().to_string(),
                    });
                }
            }
        }
        self.forget_undeployed(&channels, &mut events);
        events
    }

    /// Resolves what fired for channels that are no longer deployed, and forgets them.
    fn forget_undeployed(
        &mut self,
        channels: &[Arc<engine::Channel>],
        events: &mut Vec<AlertEvent>,
    ) {
        let deployed = |name: &str| channels.iter().any(|c| c.name() == name);
        let mut gone: Vec<(String, String)> = self
            .firing
            .keys()
            .filter(|(_, channel)| !deployed(channel))
            .cloned()
            .collect();
        gone.sort();
        for key in gone {
            if self.firing.remove(&key) == Some(true)
                && let Some(rule) = self.rules.iter().find(|r| r.name == key.0)
            {
                events.push(AlertEvent {
                    alert: key.0,
                    state: "resolved",
                    channel: key.1,
                    when: rule.when,
                    value: 0,
                    above: rule.above,
                    at: store::Timestamp::now().to_string(),
                });
            }
        }
        self.history.retain(|channel, _| deployed(channel));
    }
}

/// POSTs an event to a webhook; failures are logged, not retried (the next change is sent).
async fn post(url: &str, event: &AlertEvent) {
    let config: Result<connectors::http::HttpSenderConfig, _> = serde_json::from_value(
        serde_json::json!({ "url": url, "content_type": "application/json", "timeout": "10s" }),
    );
    let sender = match config
        .map_err(|e| e.to_string())
        .and_then(|c| c.build().map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            warn!(alert = %event.alert, error = %e, "alert webhook is misconfigured");
            return;
        }
    };
    let body = serde_json::to_vec(event).unwrap_or_default();
    if let Err(e) = sender.send(&body, &NoFields).await {
        warn!(alert = %event.alert, error = %e, "alert webhook failed");
    }
}

struct NoFields;

impl connectors::Fields for NoFields {
    fn field(&self, _: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests;
