//! Message groups on a FIFO queue: one job at a time per group, in the
//! order received; different groups in parallel.
//!
//! SQS delivers a group's messages in order and several at once (one
//! receive may bring ten of one group). Each group that has work here gets
//! one task that runs its messages one after another; messages received
//! later for that group queue behind it. When a job of the group does not
//! succeed, the messages queued behind it are handed back unrun (SQS then
//! keeps the group blocked until the failed message is received again),
//! so nothing of a group ever runs before an earlier message has
//! succeeded. Each queued message keeps its job slot: drainerd never holds
//! more messages than it has slots.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::occupancy::Hold;
use super::queue::Received;
use super::runner::{self, JobContext};
use super::settle::Request;
use crate::decide::outcome::JobOutcome;

/// One received message waiting for its turn.
pub struct Item {
    pub key: u64,
    pub message: Received,
    pub hold: Hold,
    pub permit: OwnedSemaphorePermit,
}

/// The groups with work on this instance, and what waits in each.
#[derive(Default, Clone)]
pub struct Groups(Arc<Mutex<HashMap<String, VecDeque<Item>>>>);

impl Groups {
    /// Runs `item` after the messages of its group already here, or at
    /// once (in a task of the group's own) if there are none.
    pub fn run(
        &self,
        group: String,
        item: Item,
        ctx: &Arc<JobContext>,
        jobs: &TaskTracker,
        stop_jobs: &CancellationToken,
    ) {
        let mut map = self.0.lock().expect("groups lock");
        if let Some(waiting) = map.get_mut(&group) {
            waiting.push_back(item);
            return;
        }
        map.insert(group.clone(), VecDeque::new());
        drop(map);
        jobs.spawn(
            self.clone()
                .run_group(group, item, ctx.clone(), stop_jobs.clone()),
        );
    }

    /// The group's task: its messages one at a time until none waits.
    async fn run_group(
        self,
        group: String,
        first: Item,
        ctx: Arc<JobContext>,
        stop_jobs: CancellationToken,
    ) {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            let outcome = runner::run(
                ctx.clone(),
                item.key,
                item.message,
                item.hold,
                item.permit,
                stop_jobs.child_token(),
            )
            .await;
            // Under the lock, so nothing queued for the group between
            // this decision and the group's end is missed.
            let mut map = self.0.lock().expect("groups lock");
            let waiting = map.get_mut(&group).expect("a running group has an entry");
            if outcome == JobOutcome::Succeeded {
                next = waiting.pop_front();
            } else {
                hand_back_behind(&ctx, &group, waiting.drain(..));
            }
            if next.is_none() {
                map.remove(&group);
            }
        }
    }
}

/// Hands back, unrun, the messages queued behind one that did not succeed.
fn hand_back_behind(ctx: &JobContext, group: &str, behind: impl ExactSizeIterator<Item = Item>) {
    if behind.len() > 0 {
        tracing::warn!(group, messages = behind.len(), "a message of the group did not succeed: the group's later messages go back unrun, to keep its order");
    }
    for item in behind {
        let _ = ctx
            .settle
            .send(Request::hand_back(&item.message, item.hold));
        drop(item.permit);
    }
}
