//! The discrete-event loop: one policy, one workload, one seed.
//!
//! Time jumps from event to event: arrivals come from the sorted workload
//! (a cursor, not the heap), everything else — job ends, instances ready,
//! agent checks, CloudWatch datapoints, messages visible again, spot
//! notices — from a binary heap ordered by (time, insertion). A visible
//! message goes at once to an instance with a free slot, chosen uniformly
//! among them (each such instance has a long poll waiting, and SQS hands a
//! message to one of them). Nothing here reads a clock or does I/O.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use fastrand::Rng;

use super::agent::{self, AgentState, GroupSize, Load};
use super::fleet::{Alarms, Fleet};
use super::outcome::{Outcome, Sample, Tally};
use super::policies::Policy;
use super::queue::Queue;
use super::workload::Workload;
use super::{ms, Ms, MINUTE};

const NONE: u32 = u32::MAX;

mod group;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    End {
        job: u32,
        attempt: u32,
    },
    Ready(u32),
    /// An agent's periodic check (instance, timer generation).
    Check(u32, u32),
    /// A CloudWatch datapoint: target tracking and a chart sample.
    Metric,
    /// A killed job's message is visible again.
    Visible(u32),
    /// Spot interruption notice; the instance goes [`SPOT_NOTICE`] later.
    Notice(u32),
    /// drainerd stops the jobs it could not finish and hands them back.
    Stop(u32),
    Spot(u32),
}

#[derive(Debug, PartialEq, Eq)]
struct At {
    t: Ms,
    seq: u64,
    ev: Ev,
}

impl Ord for At {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, the loop wants the earliest.
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

impl PartialOrd for At {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Why an instance went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    ScaleIn,
    Left,
    Spot,
}

pub(super) struct Inst {
    pub launch: Ms,
    pub end: Option<Ms>,
    up: bool,
    draining: bool,
    jobs: Vec<u32>,
    idle_since: Option<Ms>,
    /// Position in `eligible`, or NONE.
    slot: u32,
    /// Position in `alive`.
    alive_at: u32,
    agent: AgentState,
}

struct Engine<'a> {
    w: &'a Workload,
    f: &'a Fleet,
    p: &'a Policy,
    bounds: (u32, u32),
    now: Ms,
    seq: u64,
    heap: BinaryHeap<At>,
    rng: Rng,
    insts: Vec<Inst>,
    /// Ready instances with a free slot, taking work.
    eligible: Vec<u32>,
    /// Instances launched and not terminated.
    alive: Vec<u32>,
    queue: Queue,
    /// Per job: current attempt, its start and instance (NONE when not
    /// running), and the run that finished (start, end).
    attempt: Vec<u32>,
    start: Vec<Ms>,
    on: Vec<u32>,
    done: Vec<(Ms, Ms)>,
    desired: u32,
    in_service: u32,
    booting: u32,
    last_ready: Option<Ms>,
    alarms: Alarms,
    tally: Tally,
    series: Vec<Sample>,
}

/// Simulates `p` on `w` until the fleet's horizon. `progress` hears the
/// simulated time now and then.
pub fn run(
    w: &Workload,
    f: &Fleet,
    p: &Policy,
    seed: u64,
    progress: &mut dyn FnMut(Ms),
) -> Outcome {
    let n = w.jobs.len();
    let bounds = p.bounds(f);
    let mut e = Engine {
        w,
        f,
        p,
        bounds,
        now: 0,
        seq: 0,
        heap: BinaryHeap::new(),
        rng: Rng::with_seed(seed),
        insts: Vec::new(),
        eligible: Vec::new(),
        alive: Vec::new(),
        queue: Queue::new(w.groups.len()),
        attempt: vec![0; n],
        start: vec![0; n],
        on: vec![NONE; n],
        done: vec![(Ms::MAX, 0); n],
        desired: bounds.0,
        in_service: 0,
        booting: 0,
        last_ready: None,
        alarms: Alarms::default(),
        tally: Tally::new(bounds.0),
        series: Vec::with_capacity((f.horizon / MINUTE) as usize + 1),
    };
    for _ in 0..e.desired {
        e.launch();
    }
    e.push(MINUTE, Ev::Metric);
    let mut next = 0usize;
    let mut steps = 0u64;
    loop {
        let arrival = w.jobs.get(next).map(|j| j.enqueue);
        let (t, arrives) = match (arrival, e.heap.peek().map(|a| a.t)) {
            (Some(a), Some(h)) if h <= a => (h, false),
            (Some(a), _) => (a, true),
            (None, Some(h)) => (h, false),
            (None, None) => break,
        };
        if t >= f.horizon {
            break;
        }
        e.now = t;
        if arrives {
            e.queue.arrive(next as u32, w.jobs[next].group);
            next += 1;
            e.dispatch();
        } else if let Some(at) = e.heap.pop() {
            e.handle(at.ev);
        }
        e.tally.sizes(e.alive.len() as u32, e.desired);
        steps += 1;
        if steps & 0xFFFF == 0 {
            progress(t);
        }
    }
    let policy = p.name();
    super::outcome::finish(
        policy, w, f, bounds, &e.insts, &e.done, &e.on, &e.start, e.tally, e.series,
    )
}

impl Engine<'_> {
    fn push(&mut self, t: Ms, ev: Ev) {
        self.seq += 1;
        self.heap.push(At {
            t,
            seq: self.seq,
            ev,
        });
    }

    fn agent_params(&self) -> Option<&super::AgentParams> {
        match self.p {
            Policy::Drainerd(a) => Some(a),
            _ => None,
        }
    }

    fn interval(&self) -> Ms {
        self.agent_params()
            .map_or(MINUTE, |a| ms(a.check_interval).max(1))
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::End { job, attempt } if self.attempt[job as usize] == attempt => self.end(job),
            Ev::End { .. } => {}
            Ev::Ready(i) if self.insts[i as usize].end.is_none() => self.ready(i),
            Ev::Check(i, gen) => {
                let inst = &self.insts[i as usize];
                if inst.end.is_none() && inst.agent.gen == gen {
                    self.check(i);
                    if self.insts[i as usize].end.is_none() {
                        self.push(self.now + self.interval(), Ev::Check(i, gen));
                    }
                }
            }
            Ev::Metric => self.metric(),
            Ev::Visible(job) => {
                self.queue.returned(job);
                self.dispatch();
            }
            Ev::Notice(i) if self.insts[i as usize].end.is_none() => self.notice(i),
            Ev::Stop(i) if self.insts[i as usize].end.is_none() => self.hand_back(i),
            Ev::Spot(i) if self.insts[i as usize].end.is_none() => {
                self.terminate(i, Cause::Spot);
                self.launch(); // the group replaces it: desired is unchanged
            }
            Ev::Ready(_) | Ev::Notice(_) | Ev::Stop(_) | Ev::Spot(_) => {}
        }
    }

    fn ready(&mut self, i: u32) {
        let now = self.now;
        let inst = &mut self.insts[i as usize];
        inst.up = true;
        // The agent's occupancy starts idle at start.
        inst.idle_since = Some(now);
        let gen = inst.agent.gen;
        self.booting -= 1;
        self.in_service += 1;
        self.last_ready = Some(now);
        if self.agent_params().is_some() {
            self.push(now + self.interval(), Ev::Check(i, gen));
        }
        self.refresh(i);
        self.dispatch();
    }

    /// Keeps `eligible` in step with instance `i`.
    fn refresh(&mut self, i: u32) {
        let c = self.f.concurrency as usize;
        let inst = &self.insts[i as usize];
        let want = inst.up && inst.end.is_none() && !inst.draining && inst.jobs.len() < c;
        let slot = inst.slot;
        if want && slot == NONE {
            self.insts[i as usize].slot = self.eligible.len() as u32;
            self.eligible.push(i);
        } else if !want && slot != NONE {
            self.eligible.swap_remove(slot as usize);
            if let Some(&moved) = self.eligible.get(slot as usize) {
                self.insts[moved as usize].slot = slot;
            }
            self.insts[i as usize].slot = NONE;
        }
    }

    fn dispatch(&mut self) {
        while self.queue.has_ready() && !self.eligible.is_empty() {
            let i = self.eligible[self.rng.usize(..self.eligible.len())];
            let Some(j) = self.queue.pop() else { break };
            self.begin(j, i);
        }
    }

    fn begin(&mut self, j: u32, i: u32) {
        let ju = j as usize;
        self.start[ju] = self.now;
        self.on[ju] = i;
        let inst = &mut self.insts[i as usize];
        inst.jobs.push(j);
        let first = inst.jobs.len() == 1;
        if first {
            inst.idle_since = None;
        }
        let end = self.now + self.w.jobs[ju].run;
        self.push(
            end,
            Ev::End {
                job: j,
                attempt: self.attempt[ju],
            },
        );
        self.refresh(i);
        if first && self.agent_params().is_some() {
            // A busy period wakes the fleet task, which checks at once and
            // restarts its timer (membership's `occupancy.busy()`).
            self.insts[i as usize].agent.gen += 1;
            let gen = self.insts[i as usize].agent.gen;
            self.check(i);
            self.push(self.now + self.interval(), Ev::Check(i, gen));
        }
    }

    fn end(&mut self, j: u32) {
        let ju = j as usize;
        let i = self.on[ju];
        self.on[ju] = NONE;
        self.done[ju] = (self.start[ju], self.now);
        self.tally.done += 1;
        let inst = &mut self.insts[i as usize];
        if let Some(pos) = inst.jobs.iter().position(|&x| x == j) {
            inst.jobs.swap_remove(pos);
        }
        if inst.jobs.is_empty() {
            inst.idle_since = Some(self.now);
        }
        self.queue.finished(self.w.jobs[ju].group);
        self.refresh(i);
        self.dispatch();
    }

    /// The drainerd agent's check on instance `i`, and its leave.
    fn check(&mut self, i: u32) {
        let Policy::Drainerd(p) = self.p else { return };
        let group = GroupSize {
            in_service: self.in_service,
            desired: self.desired,
            min: self.bounds.0,
        };
        let backlog = self.queue.visible();
        let now = self.now;
        let inst = &mut self.insts[i as usize];
        let load = Load {
            launch: inst.launch,
            running: inst.jobs.len(),
            held: inst.jobs.len(),
            idle_since: inst.idle_since,
            draining: inst.draining,
        };
        if !agent::check(p, &mut inst.agent, &load, group, backlog, now) {
            return;
        }
        // Leaving: protection off, then TerminateInstanceInAutoScalingGroup
        // with decrement, which AWS refuses at MinSize.
        inst.agent.protected = false;
        if self.desired > self.bounds.0 {
            self.desired -= 1;
            self.tally.leaves += 1;
            self.terminate(i, Cause::Left);
        } else {
            inst.agent.cached = None;
        }
    }
}
