//! Forwards a job's stdout/stderr to the agent's log, bounded.
//!
//! Memory per stream is one line of at most `line_max` bytes; lines past the
//! shared rate are dropped and counted, never queued. The pipe is always
//! read to its end so a chatty child never blocks on a full pipe.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::time::Instant;

use crate::status::counters::Counters;

/// A token bucket shared by all jobs: `rate` lines per second, bursts of
/// up to one second's worth.
pub struct LineBudget {
    /// (tokens, last refill, rate).
    state: Mutex<(f64, Instant, f64)>,
}

impl LineBudget {
    pub fn new(rate: u32) -> LineBudget {
        LineBudget {
            state: Mutex::new((f64::from(rate), Instant::now(), f64::from(rate))),
        }
    }

    /// Changes the rate (on reload): the bucket holds at most a second's
    /// worth of the new rate and refills at it from now on.
    pub fn set_rate(&self, rate: u32) {
        let mut s = self.state.lock().expect("budget lock");
        s.2 = f64::from(rate);
        s.0 = s.0.min(s.2);
    }

    /// Takes one line's token; false when over the rate.
    pub fn take(&self) -> bool {
        let mut s = self.state.lock().expect("budget lock");
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * s.2;
        s.0 = (s.0 + refill).min(s.2);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Reads `pipe` to its end, logging each line (cut at `line_max` bytes)
/// with the message id, within `budget`.
pub async fn forward<R: AsyncRead + Unpin>(
    pipe: R,
    stream: &'static str,
    message_id: Arc<str>,
    line_max: usize,
    budget: Arc<LineBudget>,
    counters: Arc<Counters>,
) {
    let mut reader = BufReader::with_capacity(8192, pipe);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    let mut dropped: u64 = 0;
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let (chunk, ends_line) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let room = line_max.saturating_sub(line.len());
        if chunk.len() > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(ends_line);
        reader.consume(used);
        if ends_line {
            emit(
                &line,
                cut,
                stream,
                &message_id,
                &budget,
                &counters,
                &mut dropped,
            );
            line.clear();
            cut = false;
        }
    }
    if !line.is_empty() {
        emit(
            &line,
            cut,
            stream,
            &message_id,
            &budget,
            &counters,
            &mut dropped,
        );
    }
    if dropped > 0 {
        tracing::warn!(
            message_id = %message_id,
            stream,
            dropped_lines = dropped,
            "job output exceeded job.log_lines_per_second; {dropped} lines were not logged"
        );
    }
}

fn emit(
    line: &[u8],
    cut: bool,
    stream: &'static str,
    message_id: &str,
    budget: &LineBudget,
    counters: &Counters,
    dropped: &mut u64,
) {
    if !budget.take() {
        *dropped += 1;
        counters.output_line(false);
        return;
    }
    counters.output_line(true);
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    tracing::info!(
        target: "drainerd::job",
        message_id,
        stream,
        truncated = cut,
        "{text}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn budget_refills_with_time() {
        let b = LineBudget::new(2);
        assert!(b.take());
        assert!(b.take());
        assert!(!b.take());
        tokio::time::advance(std::time::Duration::from_millis(500)).await;
        assert!(b.take());
        assert!(!b.take());
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_applies_at_once() {
        let b = LineBudget::new(1);
        assert!(b.take());
        assert!(!b.take());
        b.set_rate(1000);
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert!((0..100).all(|_| b.take()), "100 lines in 0.1 s at 1000/s");
        b.set_rate(1);
        assert!(!b.take(), "the bucket shrinks to the new rate");
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_floods_dropped() {
        let counters = Arc::new(Counters::default());
        let mut input = vec![b'x'; 100_000];
        input.push(b'\n');
        for _ in 0..50 {
            input.extend_from_slice(b"line\n");
        }
        forward(
            &input[..],
            "stdout",
            Arc::from("m-1"),
            100,
            Arc::new(LineBudget::new(10)),
            counters.clone(),
        )
        .await;
        assert_eq!(counters.messages().output_lines_logged, 10);
        assert_eq!(counters.messages().output_lines_dropped, 41);
    }
}
