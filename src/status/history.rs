//! The last hour, a minute at a time, for the page's chart and
//! `/status.json`'s `last_hour`: jobs that ended per minute (succeeded,
//! failed, handed back) and the queue's visible messages.
//!
//! Nothing here is on a job's path: jobs bump the counters as before, and
//! [`History::sample`] reads their totals once a second (the supervisor's
//! status tick, through `Counters::tick`), closing a minute when the clock
//! has moved past it. A minute's figures are the counters' difference
//! across it, to within one tick. A minute the loop did not tick in
//! (before the agent started, while it was wedged) has no job figures; the
//! jobs that ended in it count in the next minute that has.
//!
//! The queue's depth costs a request and is read only while someone views
//! the page (`board`): a minute holds the last depth read in it, or none,
//! and the chart shows the gap rather than a guess.
//!
//! Times are arguments (wall-clock minutes, which the page labels), so
//! the tests need no clock. It must never decide anything: it is display.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many minutes are kept: the current one and the 59 before it.
pub const MINUTES: usize = 60;

/// Jobs ended, as the chart groups them (the page's cards group them the
/// same way): failed includes timed out and rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub succeeded: u64,
    pub failed: u64,
    pub handed_back: u64,
}

impl Totals {
    fn since(self, base: Totals) -> Totals {
        Totals {
            succeeded: self.succeeded.saturating_sub(base.succeeded),
            failed: self.failed.saturating_sub(base.failed),
            handed_back: self.handed_back.saturating_sub(base.handed_back),
        }
    }
}

/// One minute of the last hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minute {
    pub start: SystemTime,
    /// Jobs that ended in it; `None`: the agent was not counting.
    pub jobs: Option<Totals>,
    /// The queue's visible messages as last read in it; `None`: not read.
    pub queue_visible: Option<u64>,
}

/// A minute's place in the ring.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Minutes since the Unix epoch.
    minute: u64,
    jobs: Option<Totals>,
    queue_visible: Option<u64>,
}

#[derive(Debug)]
struct Ring {
    /// Minute `m` lives at `m % MINUTES` until minute `m + MINUTES`
    /// takes its place.
    slots: [Option<Slot>; MINUTES],
    /// The minute being counted, and the totals when it began.
    open: Option<(u64, Totals)>,
    /// The totals at the last sample.
    last: Totals,
    /// The first minute anything was recorded in (the series starts there).
    first: Option<u64>,
}

impl Default for Ring {
    fn default() -> Ring {
        Ring {
            slots: [None; MINUTES],
            open: None,
            last: Totals::default(),
            first: None,
        }
    }
}

impl Ring {
    /// Minute `m`'s slot, emptied if it held an older minute; `None` if it
    /// already holds a newer one (a write for a minute gone by).
    fn slot(&mut self, m: u64) -> Option<&mut Slot> {
        self.first = Some(self.first.map_or(m, |f| f.min(m)));
        let s = &mut self.slots[(m % MINUTES as u64) as usize];
        match s {
            Some(old) if old.minute > m => return None,
            Some(old) if old.minute == m => {}
            _ => {
                *s = Some(Slot {
                    minute: m,
                    jobs: None,
                    queue_visible: None,
                })
            }
        }
        s.as_mut()
    }
    fn get(&self, m: u64) -> Option<&Slot> {
        self.slots[(m % MINUTES as u64) as usize]
            .as_ref()
            .filter(|s| s.minute == m)
    }
}

/// The ring of the last [`MINUTES`] minutes.
#[derive(Debug, Default)]
pub struct History(Mutex<Ring>);

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60
}

impl History {
    /// The counters' totals at `now`. Closes the minute being counted once
    /// `now` is past it; a clock that went back keeps counting the same
    /// minute.
    pub fn sample(&self, now: SystemTime, totals: Totals) {
        let m = minute_of(now);
        let mut r = self.0.lock().expect("history lock");
        match r.open {
            None => {
                r.open = Some((m, totals));
                r.slot(m);
            }
            Some((open, base)) if m > open => {
                let ended = r.last.since(base);
                if let Some(s) = r.slot(open) {
                    s.jobs = Some(ended);
                }
                // What ended since the last sample counts in this minute.
                let last = r.last;
                r.open = Some((m, last));
                r.slot(m);
            }
            Some(_) => {}
        }
        r.last = totals;
    }

    /// The queue's visible messages, read at `at`.
    pub fn queue_depth(&self, at: SystemTime, visible: u64) {
        let mut r = self.0.lock().expect("history lock");
        if let Some(s) = r.slot(minute_of(at)) {
            s.queue_visible = Some(visible);
        }
    }

    /// The minutes since the first record, at most the last [`MINUTES`],
    /// oldest first, ending with `now`'s minute (counted so far, from
    /// `totals`). Empty before anything was recorded.
    pub fn series(&self, now: SystemTime, totals: Totals) -> Vec<Minute> {
        let now_m = minute_of(now);
        let r = self.0.lock().expect("history lock");
        let Some(first) = r.first else {
            return Vec::new();
        };
        let from = first.max(now_m.saturating_sub(MINUTES as u64 - 1));
        (from..=now_m)
            .map(|m| {
                let slot = r.get(m);
                let jobs = match r.open {
                    // The minute being counted: live.
                    Some((open, base)) if m == open && now_m == open => Some(totals.since(base)),
                    // Past it, before the next sample closes it: as
                    // `sample` will close it, and the rest in this minute.
                    Some((open, base)) if m == open => Some(r.last.since(base)),
                    Some((open, _)) if m == now_m && now_m > open => Some(totals.since(r.last)),
                    _ => slot.and_then(|s| s.jobs),
                };
                Minute {
                    start: UNIX_EPOCH + Duration::from_secs(m * 60),
                    jobs,
                    queue_visible: slot.and_then(|s| s.queue_visible),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
