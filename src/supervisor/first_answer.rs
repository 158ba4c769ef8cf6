//! Before anything is received: wait for the queue to answer once.
//!
//! A queue that does not exist ends the agent at once (exit 69 naming the
//! URL); one that does not answer is retried with backoff for
//! `queue.start_timeout`. A shutdown meanwhile just ends the agent (nothing
//! was received); any other control (a spot notice seen during a slow
//! start) is kept and acted on once the queue has answered.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

use super::AgentError;
use crate::aws::sqs::Sqs;
use crate::control::Control;
use crate::decide::backoff::error_backoff;

/// How the wait for the queue's first answer ended.
pub(super) enum FirstAnswer {
    /// The queue answered; these controls came meanwhile, oldest first.
    Answered(Controls),
    /// Shutdown was asked for (or the control channel closed) first.
    Shutdown,
    Failed(AgentError),
}

pub(super) async fn first_answer(
    sqs: &Sqs,
    patience: Duration,
    control: &mut mpsc::Receiver<Control>,
) -> FirstAnswer {
    let mut early = VecDeque::new();
    let waiting = wait_for_queue(sqs, patience);
    tokio::pin!(waiting);
    loop {
        tokio::select! {
            r = &mut waiting => return match r {
                Ok(()) => FirstAnswer::Answered(Controls { early }),
                Err(e) => FirstAnswer::Failed(e),
            },
            c = control.recv() => match c {
                Some(Control::Shutdown) | None => return FirstAnswer::Shutdown,
                Some(c) => {
                    tracing::info!(control = ?c, "kept until the queue answers");
                    early.push_back(c);
                }
            },
        }
    }
}

/// The controls kept while waiting for the queue, then the live ones.
pub(super) struct Controls {
    early: VecDeque<Control>,
}

impl Controls {
    pub(super) async fn next(&mut self, control: &mut mpsc::Receiver<Control>) -> Option<Control> {
        match self.early.pop_front() {
            Some(c) => Some(c),
            None => control.recv().await,
        }
    }
}

async fn wait_for_queue(sqs: &Sqs, patience: Duration) -> Result<(), AgentError> {
    let start = Instant::now();
    let mut failures = 0;
    loop {
        match sqs.check().await {
            Ok(()) => return Ok(()),
            Err(e) if e.missing => {
                return Err(AgentError::QueueMissing {
                    url: e.url,
                    detail: e.detail,
                })
            }
            Err(e) => {
                failures += 1;
                if start.elapsed() >= patience {
                    return Err(AgentError::QueueUnreachable {
                        url: e.url,
                        waited: start.elapsed(),
                        detail: e.detail,
                    });
                }
                tracing::warn!(error = %e, "queue not reachable yet; retrying");
                let d = error_backoff(
                    failures,
                    Duration::from_millis(500),
                    Duration::from_secs(5),
                    fastrand::f64(),
                );
                sleep(d.min(patience.saturating_sub(start.elapsed()))).await;
            }
        }
    }
}
