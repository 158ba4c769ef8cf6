//! The control inbox and the shutdown tree.
//!
//! Everything that asks the running agent to change course sends a
//! [`Control`] to the supervisor's inbox: signals (shutdown, reload), the
//! metadata watcher (notices), the fleet task (this instance left its
//! group). Only the supervisor acts on them.
//!
//! Every long-running task has one shape, [`Task`]: it runs until its stop
//! token is cancelled, then finishes what it owns and returns. Each is
//! started through [`Tasks`] under a child token of one root, and tracked by
//! one tracker that the supervisor waits for at exit. Stopping the process
//! is cancelling the root: every token below it is cancelled with it.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::decide::notice::Event;

/// What the outside world asks of a running agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// First: drain. Second: stop jobs now.
    Shutdown,
    /// Re-read the configuration.
    Reload,
    /// Something instance metadata said.
    Notice(Event),
    /// The fleet logic removed this instance from its group: stop for good.
    Left(String),
}

/// The sending side of the supervisor's inbox.
#[derive(Debug, Clone)]
pub struct Inbox(mpsc::Sender<Control>);

impl Inbox {
    /// A new inbox and the supervisor's receiving end.
    pub fn new() -> (Inbox, mpsc::Receiver<Control>) {
        let (tx, rx) = mpsc::channel(16);
        (Inbox(tx), rx)
    }

    /// Sends `c`; `false` once the supervisor has stopped listening.
    pub async fn send(&self, c: Control) -> bool {
        self.0.send(c).await.is_ok()
    }
}

/// A long-running task: runs until `stop` is cancelled, then finishes what
/// it owns (bounded) and returns.
pub trait Task: Send + 'static {
    /// For the log: which task started or would not stop.
    const NAME: &'static str;
    fn run(self, stop: CancellationToken) -> impl Future<Output = ()> + Send;
}

/// The shutdown tree: one root token and one tracker for every task.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    root: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// A new child token of the root: cancelled on its own, or with the
    /// root at exit.
    pub fn child(&self) -> CancellationToken {
        self.root.child_token()
    }

    /// Starts `task` until `stop` (a token from [`Tasks::child`], or a
    /// child of one).
    pub fn start<T: Task>(&self, task: T, stop: CancellationToken) -> JoinHandle<()> {
        tracing::debug!(task = T::NAME, "task started");
        self.tracker.spawn(task.run(stop))
    }

    /// Starts `task` until the root is cancelled.
    pub fn start_until_exit<T: Task>(&self, task: T) -> JoinHandle<()> {
        self.start(task, self.child())
    }

    /// Cancels the root and waits for every task to return, at most
    /// `patience`. `false` if some did not (the process exits anyway: a
    /// message whose settling was cut short becomes visible again when its
    /// visibility timeout ends).
    pub async fn stop(&self, patience: Duration) -> bool {
        self.root.cancel();
        self.tracker.close();
        let done = tokio::time::timeout(patience, self.tracker.wait())
            .await
            .is_ok();
        if !done {
            tracing::warn!(
                tasks = self.tracker.len(),
                ?patience,
                "some tasks did not stop in time; exiting anyway"
            );
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Waits(tokio::sync::oneshot::Sender<()>);
    impl Task for Waits {
        const NAME: &'static str = "waits";
        async fn run(self, stop: CancellationToken) {
            stop.cancelled().await;
            let _ = self.0.send(());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_the_root_stops_every_task_under_it() {
        let tasks = Tasks::new();
        let (a, ra) = tokio::sync::oneshot::channel();
        let (b, rb) = tokio::sync::oneshot::channel();
        let branch = tasks.child();
        tasks.start(Waits(a), branch.child_token());
        tasks.start_until_exit(Waits(b));
        assert!(tasks.stop(Duration::from_secs(1)).await);
        assert!(ra.await.is_ok() && rb.await.is_ok());
        assert!(branch.is_cancelled());
    }
}
