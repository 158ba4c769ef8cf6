//! What instance metadata says about the instance's future, in plain values.
//!
//! Parsers for every notice body (they never panic, whatever the bytes),
//! and [`Notices`], which turns successive polls into events so that each
//! notice is acted on once however often it keeps appearing, and a notice
//! that disappears is reported as withdrawn. No I/O, no clock.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Deserialize;

use crate::decide::notice::{Event, Maintenance, SpotAction, SpotNotice};

/// One poll of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<T> {
    /// 404: nothing there.
    Absent,
    Present(T),
    /// The body could not be understood.
    Malformed(String),
    /// No answer (error, timeout, 401s): tells nothing, changes nothing.
    Unknown,
}

/// Parses `spot/instance-action`.
///
/// # Errors
/// A description of what is wrong with the body.
pub fn parse_spot(body: &str) -> Result<SpotNotice, String> {
    #[derive(Deserialize)]
    struct Raw {
        action: String,
        time: String,
    }
    let raw: Raw = json(body)?;
    let action = match raw.action.as_str() {
        "terminate" => SpotAction::Terminate,
        "stop" => SpotAction::Stop,
        "hibernate" => SpotAction::Hibernate,
        other => return Err(format!("unknown action {:?}", short(other))),
    };
    let time = humantime::parse_rfc3339_weak(raw.time.trim())
        .map_err(|e| format!("bad time {:?}: {e}", short(&raw.time)))?;
    Ok(SpotNotice { action, time })
}

/// Parses `events/recommendations/rebalance`.
///
/// # Errors
/// A description of what is wrong with the body.
pub fn parse_rebalance(body: &str) -> Result<SystemTime, String> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "noticeTime")]
        notice_time: String,
    }
    let raw: Raw = json(body)?;
    humantime::parse_rfc3339_weak(raw.notice_time.trim())
        .map_err(|e| format!("bad noticeTime {:?}: {e}", short(&raw.notice_time)))
}

/// The states AWS documents for `autoscaling/target-lifecycle-state`.
pub const LIFECYCLE_STATES: &[&str] = &[
    "InService",
    "Terminated",
    "Detached",
    "Standby",
    "Warmed:Stopped",
    "Warmed:Running",
    "Warmed:Hibernated",
    "Warmed:Terminated",
];

/// Parses `autoscaling/target-lifecycle-state`.
///
/// # Errors
/// The body is not one of [`LIFECYCLE_STATES`].
pub fn parse_lifecycle(body: &str) -> Result<String, String> {
    let s = body.trim();
    if LIFECYCLE_STATES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown lifecycle state {:?}",
            s.chars().take(40).collect::<String>()
        ))
    }
}

/// Parses `events/maintenance/scheduled` (dates like `21 Jan 2019 09:00:43 GMT`).
///
/// # Errors
/// A description of what is wrong with the body.
pub fn parse_maintenance(body: &str) -> Result<Vec<Maintenance>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Raw {
        #[serde(default)]
        code: String,
        #[serde(default)]
        description: String,
        event_id: String,
        #[serde(default)]
        not_before: String,
        #[serde(default)]
        state: String,
    }
    let raw: Vec<Raw> = json(body)?;
    Ok(raw
        .into_iter()
        .take(MAX_EVENTS)
        .map(|r| Maintenance {
            id: plain(&r.event_id),
            code: plain(&r.code),
            description: plain(&r.description),
            not_before: parse_aws_date(&r.not_before),
            state: plain(&r.state),
        })
        .collect())
}

/// The start of a value, for an error message.
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A JSON notice document, refused past [`MAX_BODY`].
fn json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, String> {
    if body.len() > MAX_BODY {
        return Err(format!(
            "a document of {} bytes, over {MAX_BODY}",
            body.len()
        ));
    }
    serde_json::from_str(body.trim()).map_err(|e| format!("not the expected JSON: {e}"))
}

/// The largest notice document read (AWS's are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// Scheduled maintenance events kept at most (AWS lists a handful).
pub const MAX_EVENTS: usize = 32;
/// Characters kept of each text field of a maintenance event.
pub const MAX_TEXT: usize = 200;

/// Text from the metadata service as drainerd shows it (logs, the status
/// page, systemd's status line): control characters (newlines) become
/// spaces, and it is cut at [`MAX_TEXT`] characters.
pub fn plain(s: &str) -> String {
    s.chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `21 Jan 2019 09:00:43 GMT` → time. IMDS uses this form, not RFC 3339.
pub fn parse_aws_date(s: &str) -> Option<SystemTime> {
    let mut it = s.split_whitespace();
    let day: u32 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u32 = it.next()?.parse().ok()?;
    let hms = it.next()?;
    if it.next()? != "GMT" || hms.len() != 8 || !(1..=31).contains(&day) || year > 9999 {
        return None;
    }
    humantime::parse_rfc3339(&format!("{year:04}-{month:02}-{day:02}T{hms}Z")).ok()
}

/// What has been seen so far; each poll result goes through `observe_*`.
#[derive(Debug, Default)]
pub struct Notices {
    spot: Option<SpotNotice>,
    rebalance: Option<SystemTime>,
    lifecycle: Option<String>,
    maintenance: BTreeMap<String, Maintenance>,
}

impl Notices {
    pub fn observe_spot(&mut self, seen: Seen<SpotNotice>) -> Vec<Event> {
        match seen {
            Seen::Present(n) if self.spot != Some(n) => {
                self.spot = Some(n);
                vec![Event::Spot(n)]
            }
            Seen::Absent if self.spot.take().is_some() => vec![Event::SpotWithdrawn],
            _ => vec![],
        }
    }

    pub fn observe_rebalance(&mut self, seen: Seen<SystemTime>) -> Vec<Event> {
        match seen {
            Seen::Present(t) if self.rebalance != Some(t) => {
                self.rebalance = Some(t);
                vec![Event::Rebalance(t)]
            }
            Seen::Absent if self.rebalance.take().is_some() => vec![Event::RebalanceWithdrawn],
            _ => vec![],
        }
    }

    pub fn observe_lifecycle(&mut self, seen: Seen<String>) -> Vec<Event> {
        match seen {
            Seen::Present(s) if self.lifecycle.as_ref() != Some(&s) => {
                let from = self.lifecycle.replace(s.clone());
                vec![Event::Lifecycle(from, s)]
            }
            _ => vec![],
        }
    }

    pub fn observe_maintenance(&mut self, seen: Seen<Vec<Maintenance>>) -> Vec<Event> {
        let list = match seen {
            Seen::Present(l) => l,
            Seen::Absent => Vec::new(),
            Seen::Malformed(_) | Seen::Unknown => return vec![],
        };
        let mut events = Vec::new();
        let ids: Vec<String> = list.iter().map(|m| m.id.clone()).collect();
        for m in list {
            if self.maintenance.get(&m.id) != Some(&m) {
                self.maintenance.insert(m.id.clone(), m.clone());
                events.push(Event::Maintenance(m));
            }
        }
        let gone: Vec<String> = self
            .maintenance
            .keys()
            .filter(|k| !ids.contains(k))
            .cloned()
            .collect();
        for id in gone {
            self.maintenance.remove(&id);
            events.push(Event::MaintenanceWithdrawn(id));
        }
        events
    }

    /// The spot notice in force, if any.
    pub fn spot(&self) -> Option<SpotNotice> {
        self.spot
    }
    /// Scheduled maintenance events in force.
    pub fn maintenance(&self) -> impl Iterator<Item = &Maintenance> {
        self.maintenance.values()
    }
}

#[cfg(test)]
mod tests;
