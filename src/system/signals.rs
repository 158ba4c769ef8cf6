//! Turns process signals into controls: SIGTERM/SIGINT → shutdown (a
//! second one skips the drain wait), SIGHUP → reload.

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio_util::sync::CancellationToken;

use crate::control::{Control, Inbox, Task};

/// The forwarding task, with its handlers installed.
pub struct Signals {
    signals: signal_hook_tokio::Signals,
    inbox: Inbox,
}

impl Signals {
    /// Installs the handlers (from now on the signals are no longer fatal).
    ///
    /// # Errors
    /// The signal handlers could not be installed.
    pub fn install(inbox: Inbox) -> std::io::Result<Signals> {
        Ok(Signals {
            signals: signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])?,
            inbox,
        })
    }
}

impl Task for Signals {
    const NAME: &'static str = "signals";

    async fn run(mut self, stop: CancellationToken) {
        loop {
            let sig = tokio::select! {
                () = stop.cancelled() => return,
                s = self.signals.next() => match s {
                    Some(s) => s,
                    None => return,
                },
            };
            let c = if sig == SIGHUP {
                Control::Reload
            } else {
                Control::Shutdown
            };
            if !self.inbox.send(c).await {
                return;
            }
        }
    }
}
