//! What this instance holds right now: receives in flight, messages not yet
//! settled, jobs running, whether intake is closed or paused.
//!
//! This is what guards leaving the group (`fleet/` reads it before it
//! terminates the instance), so it is kept by types, not by counting
//! events: every unit is a guard ([`Receiving`], [`Hold`], [`Running`])
//! that the drain moves along with the work and that gives the unit back
//! when dropped — on every path, panics and aborted tasks included. The
//! status counters are for display; nothing decides from them.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

/// A reading of the occupancy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// ReceiveMessage calls under way.
    pub receiving: usize,
    /// Messages received and not yet settled (deleted or handed back, or
    /// given up on, in which case SQS makes them visible again).
    pub held: usize,
    /// Jobs running.
    pub running: usize,
    /// Intake is closed (shutdown, notice, or leaving).
    pub draining: bool,
    /// Intake is paused (the fleet task is about to leave the group).
    pub paused: bool,
    /// Jobs could not start this many times in a row.
    pub start_failures: u32,
    /// Intake is closed because jobs cannot start (the agent's fault);
    /// the receiver probes and opens it again.
    pub cannot_start: bool,
    /// When the last job ended, if none runs now (`None` while busy).
    pub idle_since: Option<SystemTime>,
}

impl Load {
    /// Nothing in hand: no receive under way, no message unsettled.
    pub fn empty_handed(&self) -> bool {
        self.receiving == 0 && self.held == 0
    }
}

/// The drain's occupancy, shared by its tasks and read by the fleet task.
#[derive(Debug)]
pub struct Occupancy {
    load: Mutex<Load>,
    /// Woken on every change that a waiter may be waiting for.
    changed: Notify,
    /// Woken when a busy period starts (the first job after idle).
    busy: Notify,
}

impl Occupancy {
    /// Idle since now, intake open.
    pub fn new() -> Arc<Occupancy> {
        Arc::new(Occupancy {
            load: Mutex::new(Load {
                idle_since: Some(SystemTime::now()),
                ..Load::default()
            }),
            changed: Notify::new(),
            busy: Notify::new(),
        })
    }

    pub fn now(&self) -> Load {
        *self.load.lock().expect("occupancy lock")
    }

    fn change(&self, f: impl FnOnce(&mut Load)) {
        f(&mut self.load.lock().expect("occupancy lock"));
        self.changed.notify_waiters();
    }

    /// A receive is under way until the guard drops.
    pub fn receiving(self: &Arc<Self>) -> Receiving {
        self.change(|l| l.receiving += 1);
        Receiving(self.clone())
    }

    /// One received message is held until the guard drops (after SQS has
    /// answered its delete or hand-back, or the settler gave up on it).
    pub fn hold(self: &Arc<Self>) -> Hold {
        self.change(|l| l.held += 1);
        Hold(self.clone())
    }

    /// A job runs until the guard drops.
    pub fn running(self: &Arc<Self>) -> Running {
        let mut first = false;
        self.change(|l| {
            first = l.running == 0;
            l.running += 1;
            l.idle_since = None;
        });
        if first {
            self.busy.notify_one();
        }
        Running(self.clone())
    }

    /// Intake is closed (a shutdown, a notice, leaving).
    pub fn close_intake(&self) {
        self.change(|l| l.draining = true);
    }

    /// Intake is open (at start, and when a drain for a notice ends).
    pub fn open_intake(&self) {
        self.change(|l| l.draining = false);
    }

    /// Pauses (or resumes) intake: no receive starts while paused.
    pub fn pause(&self, on: bool) {
        self.change(|l| l.paused = on);
    }

    /// A job could not start. `true` when this failure closed intake
    /// ([`crate::decide::outcome::close_intake_after`] in a row).
    pub fn start_failed(&self) -> bool {
        let mut closed = false;
        self.change(|l| {
            l.start_failures = l.start_failures.saturating_add(1);
            if !l.cannot_start && crate::decide::outcome::close_intake_after(l.start_failures) {
                l.cannot_start = true;
                closed = true;
            }
        });
        closed
    }

    /// A job started: the start failures in a row are over.
    pub fn start_succeeded(&self) {
        if self.now().start_failures > 0 {
            self.change(|l| l.start_failures = 0);
        }
    }

    /// The start probe passed: intake opens again.
    pub fn can_start_again(&self) {
        self.change(|l| {
            l.cannot_start = false;
            l.start_failures = 0;
        });
    }

    /// Waits until `ready(load)` holds.
    pub async fn wait_until(&self, ready: impl Fn(&Load) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready(&self.now()) {
                return;
            }
            notified.await;
        }
    }

    /// Waits for a busy period to start (returns at once if one started
    /// since the last call).
    pub async fn busy(&self) {
        self.busy.notified().await;
    }
}

/// A receive under way.
#[derive(Debug)]
pub struct Receiving(Arc<Occupancy>);

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.change(|l| l.receiving -= 1);
    }
}

/// One message not yet settled.
#[derive(Debug)]
pub struct Hold(Arc<Occupancy>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.change(|l| l.held -= 1);
    }
}

/// One job running.
#[derive(Debug)]
pub struct Running(Arc<Occupancy>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.change(|l| {
            l.running -= 1;
            if l.running == 0 {
                l.idle_since = Some(SystemTime::now());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_give_back_what_they_took() {
        let o = Occupancy::new();
        assert!(o.now().idle_since.is_some());
        let r = o.receiving();
        let holds = [o.hold(), o.hold()];
        let job = o.running();
        let l = o.now();
        assert_eq!((l.receiving, l.held, l.running), (1, 2, 1));
        assert!(l.idle_since.is_none() && !l.empty_handed());
        drop(r);
        drop(holds);
        assert!(o.now().empty_handed());
        drop(job);
        assert!(o.now().idle_since.is_some());
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_last_hold_is_given_back() {
        let o = Occupancy::new();
        let h = o.hold();
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.wait_until(Load::empty_handed).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(h);
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn a_panicking_job_still_gives_its_units_back() {
        let o = Occupancy::new();
        let o2 = o.clone();
        let r = tokio::spawn(async move {
            let _hold = o2.hold();
            let _job = o2.running();
            panic!("job task panics");
        })
        .await;
        assert!(r.is_err());
        let l = o.now();
        assert_eq!((l.held, l.running), (0, 0));
    }
}
