//! The instance metadata watcher: polls the notice paths and sends each
//! new event to the supervisor's inbox.
//!
//! It fetches (through `aws::imds`) and parses (`notice`); it decides
//! nothing. A 404 means "no notice"; errors, 401s, throttling and garbage
//! are logged (without flooding) and survived: the queue keeps draining
//! whatever the metadata service does.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::notice::{self, Notices, Seen};
use crate::aws::imds::{Imds, LIFECYCLE, MAINTENANCE, REBALANCE, SPOT};
use crate::control::{Control, Inbox, Task};
use crate::decide::notice::{maintenance_due, Event};
use crate::status::counters::Counters;

/// Logs a path's failures: each new kind of failure at once, the same kind
/// again at most once a minute, and the recovery.
#[derive(Default)]
struct Complaints {
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    last_kind: String,
    suppressed: u64,
}

/// A failure's kind: its description up to the first detail that varies.
fn kind_of(what: &str, detail: &str) -> String {
    let d: String = detail.chars().take(60).collect();
    format!("{what}: {d}")
}

impl Complaints {
    fn failed(&mut self, path: &str, what: &str, detail: &str) {
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        let kind = kind_of(what, detail);
        if kind != self.last_kind
            || self
                .last_logged
                .is_none_or(|t| now - t >= Duration::from_secs(60))
        {
            tracing::warn!(path, error = %detail, repeats = self.suppressed, "instance metadata {what}; still draining, will retry");
            self.last_logged = Some(now);
            self.last_kind = kind;
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }
    fn ok(&mut self, path: &str) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(path, after = ?since.elapsed(), "instance metadata answers again");
            self.last_logged = None;
            self.last_kind.clear();
            self.suppressed = 0;
        }
    }
}

fn seen<T>(
    path: &str,
    fetched: Result<Option<String>, String>,
    parse: impl Fn(&str) -> Result<T, String>,
    complaints: &mut Complaints,
) -> Seen<T> {
    match fetched {
        Ok(None) => {
            complaints.ok(path);
            Seen::Absent
        }
        Ok(Some(body)) => match parse(&body) {
            Ok(v) => {
                complaints.ok(path);
                Seen::Present(v)
            }
            Err(e) => {
                complaints.failed(path, "answered something unexpected", &e);
                Seen::Malformed(e)
            }
        },
        Err(e) => {
            complaints.failed(path, "did not answer", &e);
            Seen::Unknown
        }
    }
}

/// Polls the notice paths every `poll_interval` until stopped.
pub struct Watcher {
    pub imds: Arc<Imds>,
    pub poll_interval: Duration,
    /// With maintenance drains on: how long before NotBefore to report an
    /// event as due.
    pub maintenance_lead: Option<Duration>,
    pub inbox: Inbox,
    pub counters: Arc<Counters>,
}

impl Task for Watcher {
    const NAME: &'static str = "metadata watcher";

    async fn run(self, stop: CancellationToken) {
        let Watcher {
            imds,
            poll_interval,
            maintenance_lead,
            inbox,
            counters,
        } = self;
        let mut notices = Notices::default();
        let mut complaints: [Complaints; 4] = Default::default();
        let mut due_sent: Vec<String> = Vec::new();
        let mut tick = tokio::time::interval(poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let (spot, rebalance, lifecycle, maintenance) = tokio::join!(
                imds.get(SPOT),
                imds.get(REBALANCE),
                imds.get(LIFECYCLE),
                imds.get(MAINTENANCE)
            );
            let [c0, c1, c2, c3] = &mut complaints;
            let mut events = notices.observe_spot(seen(SPOT, spot, notice::parse_spot, c0));
            events.extend(notices.observe_rebalance(seen(
                REBALANCE,
                rebalance,
                notice::parse_rebalance,
                c1,
            )));
            events.extend(notices.observe_lifecycle(seen(
                LIFECYCLE,
                lifecycle,
                notice::parse_lifecycle,
                c2,
            )));
            events.extend(notices.observe_maintenance(seen(
                MAINTENANCE,
                maintenance,
                notice::parse_maintenance,
                c3,
            )));
            if let Some(lead) = maintenance_lead {
                let now = SystemTime::now();
                for m in notices.maintenance() {
                    if maintenance_due(m, lead, now) && !due_sent.contains(&m.id) {
                        due_sent.push(m.id.clone());
                        events.push(Event::MaintenanceDue(m.clone()));
                    }
                }
            }
            for e in events {
                counters.notices.add(e.kind(), true);
                if let Event::Lifecycle(_, to) = &e {
                    counters.set_lifecycle_state(to.clone());
                }
                if !inbox.send(Control::Notice(e)).await {
                    return;
                }
            }
        }
    }
}
