//! Job slots: a semaphore whose size can change while jobs run.
//!
//! A slot is an owned permit moved into the job's task and released once
//! the job has ended and its message is with the settler (the message's
//! `Hold` keeps the agent busy until it is settled; the slot need not wait
//! for the batch). Shrinking waits for running jobs to give
//! their permits back (tokio's semaphore is fair, so a pending shrink is
//! served before new jobs start): running jobs are never touched.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Slots {
    sem: Arc<Semaphore>,
    size: Mutex<usize>,
}

impl Slots {
    pub fn new(size: usize) -> Slots {
        Slots {
            sem: Arc::new(Semaphore::new(size)),
            size: Mutex::new(size),
        }
    }

    /// The configured number of slots.
    pub fn size(&self) -> usize {
        *self.size.lock().expect("slots lock")
    }

    /// Waits for one free slot, then takes up to `max` free slots in all.
    pub async fn acquire_up_to(&self, max: usize) -> Vec<OwnedSemaphorePermit> {
        let first = self
            .sem
            .clone()
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed");
        let mut permits = vec![first];
        while permits.len() < max {
            match self.sem.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        permits
    }

    /// Waits for one free slot, then up to `gather` for more, returning as
    /// soon as `max` are held. Jobs that end together then share one
    /// receive instead of one receive each.
    pub async fn acquire_batch(&self, max: usize, gather: Duration) -> Vec<OwnedSemaphorePermit> {
        let mut permits = self.acquire_up_to(max).await;
        let until = tokio::time::Instant::now() + gather;
        while permits.len() < max {
            tokio::select! {
                biased;
                p = self.sem.clone().acquire_owned() => permits.push(p.expect("the slot semaphore is never closed")),
                () = tokio::time::sleep_until(until) => break,
            }
        }
        permits
    }

    /// Waits until `n` slots are free and takes them all at once.
    pub async fn acquire_exactly(&self, n: usize) -> Vec<OwnedSemaphorePermit> {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        let mut all = self
            .sem
            .clone()
            .acquire_many_owned(n32)
            .await
            .expect("the slot semaphore is never closed");
        let mut permits: Vec<OwnedSemaphorePermit> = (1..n).filter_map(|_| all.split(1)).collect();
        permits.push(all);
        permits
    }

    /// Changes the number of slots. Growing is immediate; shrinking takes
    /// effect as running jobs finish.
    pub fn resize(&self, new: usize) {
        let mut size = self.size.lock().expect("slots lock");
        let old = *size;
        *size = new;
        if new > old {
            self.sem.add_permits(new - old);
        } else if new < old {
            let sem = self.sem.clone();
            let n = u32::try_from(old - new).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                if let Ok(p) = sem.acquire_many_owned(n).await {
                    p.forget();
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shrinking_waits_for_running_jobs() {
        let slots = Slots::new(4);
        let running = slots.acquire_up_to(10).await;
        assert_eq!(running.len(), 4);
        slots.resize(1);
        tokio::task::yield_now().await;
        drop(running);
        tokio::task::yield_now().await;
        let next = slots.acquire_up_to(10).await;
        assert_eq!(next.len(), 1, "after shrinking to 1, one job at a time");
        drop(next);
        slots.resize(3);
        assert_eq!(slots.acquire_up_to(10).await.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_gathers_slots_freed_shortly_after() {
        let slots = Arc::new(Slots::new(3));
        let mut running = slots.acquire_up_to(3).await;
        let last = running.pop().unwrap();
        let s2 = slots.clone();
        let batch =
            tokio::spawn(async move { s2.acquire_batch(3, Duration::from_millis(25)).await.len() });
        drop(running.pop());
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(running.pop());
        // The third slot stays busy: the batch closes after the window.
        assert_eq!(batch.await.unwrap(), 2);
        drop(last);
    }
}
