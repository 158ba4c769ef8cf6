//! The group's side of the loop: launches, terminations, target
//! tracking at each CloudWatch datapoint, the default termination policy's
//! choice, spot interruptions. What the instances and the agent do is in
//! `engine.rs`.

use super::{Cause, Engine, Ev, Inst, NONE};
use crate::decide::leave::to_billing_boundary;
use crate::decide::notice::{self, Event, Reaction, SpotAction, SpotNotice};
use crate::ops::simulate::agent::{self, AgentState};
use crate::ops::simulate::fleet::{self, Reading, SPOT_NOTICE};
use crate::ops::simulate::outcome::Sample;
use crate::ops::simulate::{ms, Ms, HOUR, MINUTE};

impl Engine<'_> {
    pub(super) fn launch(&mut self) {
        let i = self.insts.len() as u32;
        self.insts.push(Inst {
            launch: self.now,
            end: None,
            up: false,
            draining: false,
            jobs: Vec::new(),
            idle_since: None,
            slot: NONE,
            alive_at: self.alive.len() as u32,
            agent: AgentState::default(),
        });
        self.alive.push(i);
        self.booting += 1;
        self.tally.launches += 1;
        self.push(self.now + self.f.boot, Ev::Ready(i));
        if self.f.spot_per_hour > 0.0 {
            let mean = HOUR as f64 / self.f.spot_per_hour;
            let after = -mean * (1.0 - self.rng.f64()).ln();
            let t = self.now.saturating_add(after as Ms);
            if t < self.f.horizon {
                self.push(t, Ev::Notice(i));
            }
        }
    }

    pub(super) fn metric(&mut self) {
        let visible = self.queue.visible();
        self.series.push(Sample {
            t: self.now,
            live: self.alive.len() as u32,
            visible,
        });
        let warming = self.booting > 0
            || self
                .last_ready
                .is_some_and(|r| self.now < r + self.f.warmup);
        let reading = Reading {
            visible,
            in_service: self.in_service,
            live: self.alive.len() as u32,
            desired: self.desired,
            warming,
        };
        let new = fleet::datapoint(
            self.f,
            self.bounds,
            &mut self.alarms,
            reading,
            self.p.scales_out(),
            self.p.scales_in(),
        );
        if new > self.desired {
            for _ in self.desired..new {
                self.launch();
            }
        } else if new < self.desired {
            for i in self.victims((self.desired - new) as usize) {
                self.terminate(i, Cause::ScaleIn);
            }
        }
        self.desired = new;
        self.push(self.now + MINUTE, Ev::Metric);
    }

    /// Whom the group's default termination policy picks (one AZ, one
    /// launch template): closest to its next billing hour, then oldest.
    fn victims(&self, n: usize) -> Vec<u32> {
        let now = agent::wall(self.now);
        let mut v: Vec<(std::time::Duration, u32)> = self
            .alive
            .iter()
            .map(|&i| {
                let launch = agent::wall(self.insts[i as usize].launch);
                (to_billing_boundary(now, launch), i)
            })
            .collect();
        v.sort_unstable();
        v.into_iter().take(n).map(|(_, i)| i).collect()
    }

    pub(super) fn notice(&mut self, i: u32) {
        let at = self.now + SPOT_NOTICE;
        if let Some(p) = self.agent_params() {
            let n = Event::Spot(SpotNotice {
                action: SpotAction::Terminate,
                time: agent::wall(at),
            });
            if let Reaction::Drain {
                stop_jobs_in: Some(d),
                ..
            } = notice::reaction(&n, &p.notice, agent::wall(self.now))
            {
                self.insts[i as usize].draining = true;
                self.refresh(i);
                // Pushed before the interruption, so at the same instant
                // the hand-back comes first.
                self.push(self.now + ms(d).min(SPOT_NOTICE), Ev::Stop(i));
            }
        }
        self.push(at, Ev::Spot(i));
    }

    pub(super) fn terminate(&mut self, i: u32, cause: Cause) {
        let now = self.now;
        let inst = &mut self.insts[i as usize];
        inst.end = Some(now);
        inst.draining = true;
        if inst.up {
            self.in_service -= 1;
        } else {
            self.booting -= 1;
        }
        let pos = inst.alive_at as usize;
        let jobs = std::mem::take(&mut inst.jobs);
        self.alive.swap_remove(pos);
        if let Some(&moved) = self.alive.get(pos) {
            self.insts[moved as usize].alive_at = pos as u32;
        }
        self.refresh(i);
        if !jobs.is_empty() {
            self.tally.busy_terminations += 1;
        }
        for j in jobs {
            let ju = j as usize;
            self.attempt[ju] += 1;
            self.on[ju] = NONE;
            match cause {
                Cause::Spot => self.tally.interrupted += 1,
                Cause::ScaleIn | Cause::Left => self.tally.killed += 1,
            }
            // Visible again a lease after its last renewal.
            let s = self.start[ju];
            let hb = self.f.heartbeat.max(1);
            let renewed = s + (now - s) / hb * hb;
            self.push((renewed + self.f.lease).max(now), Ev::Visible(j));
        }
    }

    /// drainerd's reaction to a spot notice, at the time it chose: the jobs
    /// still running are stopped and their messages visible at once.
    pub(super) fn hand_back(&mut self, i: u32) {
        let jobs = std::mem::take(&mut self.insts[i as usize].jobs);
        for j in jobs {
            self.attempt[j as usize] += 1;
            self.on[j as usize] = NONE;
            self.tally.interrupted += 1;
            self.queue.returned(j);
        }
        self.insts[i as usize].idle_since = Some(self.now);
        self.dispatch();
    }
}
