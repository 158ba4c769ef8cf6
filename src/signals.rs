//! Turns process signals into agent controls: SIGTERM/SIGINT → shutdown
//! (a second one skips the drain wait), SIGHUP → reload.

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::mpsc;

use crate::agent::Control;

/// Starts forwarding signals to `tx`.
///
/// # Errors
/// The signal handlers could not be installed.
pub fn forward(tx: mpsc::Sender<Control>) -> std::io::Result<()> {
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    tokio::spawn(async move {
        while let Some(sig) = signals.next().await {
            let c = if sig == SIGHUP {
                Control::Reload
            } else {
                Control::Shutdown
            };
            if tx.send(c).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}
