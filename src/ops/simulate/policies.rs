//! The policies compared on one workload (docs/simulate.md, "Policies"):
//!
//! - **drainerd**: the group scales out by target tracking and never in
//!   (`DisableScaleIn`, as drainerd is deployed); each instance runs the
//!   agent's protection and stay/leave decisions from `[fleet]` and leaves
//!   with TerminateInstanceInAutoScalingGroup (decrement).
//! - **asg-scale-in**: the same group with target tracking's scale-in on
//!   and no protection: the group picks whom to terminate, busy or not;
//!   killed jobs run again once their message is visible.
//! - **always-on**: a fixed group at the size the zero-wait peak needs
//!   (clamped to min/max); never scales.
//!
//! The fourth row, the lower bound, is not a policy but a computation on
//! the schedules the others produced (`bound`).

use std::time::Duration;

use super::bound;
use super::fleet::Fleet;
use super::workload::Workload;
use crate::config::Config;
use crate::decide::leave::Rules;
use crate::decide::notice::NoticeRules;

/// What each simulated drainerd instance is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentParams {
    /// `[fleet]` as the agent reads it (`fleet/membership.rs`, `rules`).
    pub rules: Rules,
    pub protect_while_busy: bool,
    pub protection_linger: Duration,
    pub check_interval: Duration,
    /// `Config::notice_rules`: how the agent reacts to a spot notice.
    pub notice: NoticeRules,
}

impl AgentParams {
    /// From a loaded configuration, field for field as the agent maps
    /// `[fleet]` to [`Rules`].
    pub fn from_config(c: &Config) -> AgentParams {
        let f = &c.fleet;
        AgentParams {
            rules: f.leave_rules(),
            protect_while_busy: f.protect_while_busy,
            protection_linger: f.protection_linger.0,
            check_interval: f.check_interval.0,
            notice: c.notice_rules(),
        }
    }
}

/// One way of running the fleet.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    Drainerd(AgentParams),
    AsgScaleIn,
    /// A fixed group of this many instances.
    AlwaysOn(u32),
}

impl Policy {
    pub fn name(&self) -> String {
        match self {
            Policy::Drainerd(_) => "drainerd".into(),
            Policy::AsgScaleIn => "asg-scale-in".into(),
            Policy::AlwaysOn(n) => format!("always-on ({n})"),
        }
    }

    /// The group's (MinSize, MaxSize) under this policy.
    pub fn bounds(&self, f: &Fleet) -> (u32, u32) {
        match self {
            Policy::AlwaysOn(n) => (*n, *n),
            _ => (f.min, f.max),
        }
    }

    /// Target tracking may raise desired capacity.
    pub fn scales_out(&self) -> bool {
        !matches!(self, Policy::AlwaysOn(_))
    }

    /// Target tracking may lower it (and the group picks the victims).
    pub fn scales_in(&self) -> bool {
        matches!(self, Policy::AsgScaleIn)
    }
}

/// Instances the zero-wait peak needs: the most jobs running at once if
/// every job started when enqueued, over the concurrency, within
/// [min, max].
pub fn always_on_size(w: &Workload, f: &Fleet) -> u32 {
    let peak = bound::peak(
        w.jobs.iter().map(|j| (j.enqueue, j.enqueue + j.run)),
        f.horizon,
    );
    let need = peak.div_ceil(u64::from(f.concurrency));
    (need.min(u64::from(f.max)) as u32).max(f.min).max(1)
}

/// The three policies, in the report's order.
pub fn lineup(w: &Workload, f: &Fleet, agent: &AgentParams) -> Vec<Policy> {
    vec![
        Policy::Drainerd(agent.clone()),
        Policy::AsgScaleIn,
        Policy::AlwaysOn(always_on_size(w, f)),
    ]
}
