//! One simulated drainerd instance's fleet check, fed as
//! `fleet/membership.rs` feeds the agent's decisions: protection from
//! [`protection::wanted`], then [`leave::decide`] first on the cached
//! group figures with no backlog (the agent's cheap pass), and only if that
//! would leave, again on fresh figures and the queue's visible backlog. The
//! group figures are re-read every [`GROUP_REFRESH_CHECKS`] checks and
//! after a refused leave, as the agent does.
//!
//! This file never decides anything itself: it turns simulated state into
//! the decisions' [`Inputs`] and hands the verdict back to the engine,
//! which carries it out (TerminateInstanceInAutoScalingGroup with
//! decrement, refused at MinSize).

use std::time::{Duration, SystemTime};

use super::policies::AgentParams;
use super::Ms;
use crate::decide::leave::{self, Billing, Inputs};
use crate::decide::protection;

/// The agent re-reads the group every this many checks (membership's
/// `GROUP_REFRESH_CHECKS`).
pub(super) const GROUP_REFRESH_CHECKS: u32 = 20;

/// Simulated time 0 as wall-clock time (2026-01-01T00:00:00Z), so the
/// decisions see ordinary `SystemTime`s.
pub(super) fn wall(t: Ms) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600) + Duration::from_millis(t)
}

/// What DescribeAutoScalingGroups tells the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GroupSize {
    pub in_service: u32,
    pub desired: u32,
    pub min: u32,
}

/// What the agent keeps between checks.
#[derive(Debug, Clone, Default)]
pub(super) struct AgentState {
    /// Bumped when the check timer restarts (a busy period woke the task),
    /// so the engine can drop the stale tick.
    pub gen: u32,
    /// Group figures and when they were read.
    pub cached: Option<(GroupSize, Ms)>,
    pub protected: bool,
}

/// The instance as the agent's occupancy sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Load {
    pub launch: Ms,
    pub running: usize,
    /// Messages received and not settled; the simulation settles at once,
    /// so these are the running jobs' messages.
    pub held: usize,
    pub idle_since: Option<Ms>,
    pub draining: bool,
}

fn inputs(now: Ms, l: &Load, backlog: u64, g: GroupSize) -> Inputs {
    Inputs {
        now: wall(now),
        launch_time: wall(l.launch),
        idle_since: l.idle_since.map(wall),
        jobs_running: l.running,
        messages_in_flight: l.held,
        backlog,
        in_service: g.in_service,
        desired: g.desired,
        min: g.min,
        draining: l.draining,
    }
}

/// One check at `now`; `true` when the agent would now leave the group.
/// `group` is the group as it is now (a fresh read), `backlog` the queue's
/// visible messages.
pub(super) fn check(
    p: &AgentParams,
    st: &mut AgentState,
    l: &Load,
    group: GroupSize,
    backlog: u64,
    now: Ms,
) -> bool {
    if p.protect_while_busy {
        let idle_for = l
            .idle_since
            .map(|t| Duration::from_millis(now.saturating_sub(t)));
        st.protected = protection::wanted(l.running, l.held, idle_for, p.protection_linger);
    }
    if p.rules.billing == Billing::Never {
        return false;
    }
    let refresh = super::ms(p.check_interval) * Ms::from(GROUP_REFRESH_CHECKS);
    let size = match st.cached {
        Some((g, at)) if now.saturating_sub(at) < refresh => g,
        _ => {
            st.cached = Some((group, now));
            group
        }
    };
    if !leave::decide(&inputs(now, l, 0, size), &p.rules).leaves() {
        return false;
    }
    st.cached = Some((group, now));
    leave::decide(&inputs(now, l, backlog, group), &p.rules).leaves()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ops::simulate::{MINUTE, SECOND};

    fn params() -> AgentParams {
        let c = Config::from_str_with_env(
            "[queue]\nurl = \"https://sqs.us-east-1.amazonaws.com/1/q\"\n[job]\ncommand = [\"x\"]\n[fleet]\nidle_timeout = \"5m\"\nmin_lifetime = \"1m\"\n",
            std::path::Path::new("t.toml"),
            &std::collections::BTreeMap::new(),
        )
        .unwrap();
        AgentParams::from_config(&c)
    }

    fn idle(since: Ms) -> Load {
        Load {
            launch: 0,
            running: 0,
            held: 0,
            idle_since: Some(since),
            draining: false,
        }
    }

    const GROUP: GroupSize = GroupSize {
        in_service: 3,
        desired: 3,
        min: 1,
    };

    #[test]
    fn leaves_after_the_idle_timeout_with_no_backlog() {
        let p = params();
        let mut st = AgentState::default();
        assert!(!check(&p, &mut st, &idle(0), GROUP, 0, 4 * MINUTE));
        assert!(check(&p, &mut st, &idle(0), GROUP, 0, 5 * MINUTE));
        assert!(
            !check(&p, &mut st, &idle(0), GROUP, 100, 5 * MINUTE),
            "backlog"
        );
        assert!(!st.protected, "idle past the linger");
    }

    #[test]
    fn protected_while_busy_and_never_leaves_busy() {
        let p = params();
        let mut st = AgentState::default();
        let busy = Load {
            running: 2,
            held: 2,
            idle_since: None,
            ..idle(0)
        };
        assert!(!check(&p, &mut st, &busy, GROUP, 0, 60 * MINUTE));
        assert!(st.protected);
    }

    #[test]
    fn a_stale_min_size_reading_keeps_it_until_the_refresh() {
        // The agent read the group at MinSize; others joined since. The
        // cached figures say "stay" until they are 20 checks old.
        let p = params();
        let at_min = GroupSize {
            in_service: 1,
            desired: 1,
            min: 1,
        };
        let mut st = AgentState {
            cached: Some((at_min, 0)),
            ..AgentState::default()
        };
        let now = 6 * MINUTE;
        assert!(!check(&p, &mut st, &idle(0), GROUP, 0, now));
        let later = 20 * 30 * SECOND;
        assert!(check(&p, &mut st, &idle(0), GROUP, 0, later));
    }
}
