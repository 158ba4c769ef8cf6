//! The settler against a scripted queue, under paused time: the paths moto
//! cannot reach (it never refuses part of a batch or fails on request).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::drain::fake::{FakeQueue, Reply};
use crate::drain::occupancy::Occupancy;

struct Run {
    fake: Arc<FakeQueue>,
    counters: Arc<Counters>,
    occupancy: Arc<Occupancy>,
}

impl Run {
    fn new() -> Run {
        Run {
            fake: Arc::new(FakeQueue::default()),
            counters: Arc::new(Counters::default()),
            occupancy: Occupancy::new(),
        }
    }

    /// Settles `requests` (id, action) through a settler that is then
    /// stopped, and waits for it to finish.
    async fn settle(&self, requests: &[(&str, Action)]) {
        let (tx, rx) = mpsc::unbounded_channel();
        for (id, action) in requests {
            tx.send(Request {
                message_id: Arc::from(*id),
                receipt: Receipt(format!("r-{id}")),
                action: *action,
                hold: self.occupancy.hold(),
                copy: None,
            })
            .unwrap();
        }
        let settler = Settler {
            queue: self.fake.clone(),
            requests: rx,
            counters: self.counters.clone(),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(settler.run(stop.clone()));
        stop.cancel();
        task.await.unwrap();
        drop(tx);
    }

    fn receipts_of_call(&self, i: usize) -> Vec<String> {
        self.fake.calls()[i]
            .entries
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_partly_refused_batch_retries_only_the_refused_entries() {
    let run = Run::new();
    run.fake.reply(Reply::Refuse {
        indices: vec![1],
        sender_fault: false,
    });
    run.settle(&[
        ("a", Action::Delete),
        ("b", Action::Delete),
        ("c", Action::Delete),
    ])
    .await;
    assert_eq!(run.fake.calls().len(), 2);
    assert_eq!(run.receipts_of_call(0), ["r-a", "r-b", "r-c"]);
    assert_eq!(
        run.receipts_of_call(1),
        ["r-b"],
        "only the refused entry again"
    );
    let m = run.counters.messages();
    assert_eq!((m.deleted, m.delete_failures), (3, 0));
    assert_eq!(run.occupancy.now().held, 0, "every message settled");
}

#[tokio::test(start_paused = true)]
async fn an_entry_refused_for_good_is_given_up_at_once_and_the_rest_settle() {
    let run = Run::new();
    run.fake.reply(Reply::Refuse {
        indices: vec![0],
        sender_fault: true,
    });
    let back = Action::Release(Duration::from_secs(20));
    run.settle(&[("a", back), ("b", back)]).await;
    assert_eq!(run.fake.calls().len(), 1, "a sender fault is not retried");
    let m = run.counters.messages();
    assert_eq!((m.released, m.release_failures), (1, 1));
    assert_eq!(
        run.fake.calls()[0].entries[1].1,
        Some(Duration::from_secs(20))
    );
    assert_eq!(run.occupancy.now().held, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failing_call_is_retried_then_given_up_and_the_messages_released() {
    let run = Run::new();
    for _ in 0..5 {
        run.fake.reply(Reply::Fail);
    }
    run.settle(&[("a", Action::Delete), ("b", Action::Delete)])
        .await;
    assert_eq!(run.fake.calls().len(), 5, "ATTEMPTS calls, then give up");
    let m = run.counters.messages();
    assert_eq!((m.deleted, m.delete_failures), (0, 2));
    assert_eq!(
        run.occupancy.now().held,
        0,
        "given up: no longer held (SQS makes them visible again)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_that_errors_then_succeeds_settles_everything() {
    let run = Run::new();
    run.fake.reply(Reply::Fail).reply(Reply::Ok);
    run.settle(&[
        ("a", Action::Delete),
        ("b", Action::Release(Duration::ZERO)),
    ])
    .await;
    let apis: Vec<&str> = run.fake.calls().iter().map(|c| c.api).collect();
    assert_eq!(apis.len(), 3, "{apis:?}");
    let m = run.counters.messages();
    assert_eq!((m.deleted, m.released), (1, 1));
    assert_eq!((m.delete_failures, m.release_failures), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn full_batches_go_before_the_linger_and_the_rest_waits_for_it() {
    let run = Run::new();
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..13 {
        tx.send(Request {
            message_id: Arc::from(format!("m{i}").as_str()),
            receipt: Receipt(format!("r-m{i}")),
            action: Action::Delete,
            hold: run.occupancy.hold(),
            copy: None,
        })
        .unwrap();
    }
    let settler = Settler {
        queue: run.fake.clone(),
        requests: rx,
        counters: run.counters.clone(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(settler.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(run.fake.calls().len(), 1, "one full batch at once");
    assert_eq!(run.occupancy.now().held, 3);
    tokio::time::sleep(LINGER).await;
    assert_eq!(run.fake.calls().len(), 2, "the rest after the linger");
    assert_eq!(run.receipts_of_call(1).len(), 3);
    stop.cancel();
    task.await.unwrap();
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_never_answers_holds_up_its_own_batch_only() {
    let run = Run::new();
    run.fake.reply(Reply::Stall);
    let (tx, rx) = mpsc::unbounded_channel();
    let send = |i: usize| {
        tx.send(Request {
            message_id: Arc::from(format!("m{i}").as_str()),
            receipt: Receipt(format!("r-m{i}")),
            action: Action::Delete,
            hold: run.occupancy.hold(),
            copy: None,
        })
        .unwrap()
    };
    let settler = Settler {
        queue: run.fake.clone(),
        requests: rx,
        counters: run.counters.clone(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(settler.run(stop.clone()));
    (0..10).for_each(send);
    tokio::time::sleep(Duration::from_millis(10)).await;
    (10..20).for_each(send);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(run.fake.calls().len(), 2, "the second batch went out");
    assert_eq!(run.counters.messages().deleted, 10, "and was settled");
    assert_eq!(
        run.occupancy.now().held,
        10,
        "the stalled batch is still held"
    );
    // At exit the stalled batch is given up after the flush patience.
    stop.cancel();
    tokio::time::sleep(FLUSH_PATIENCE + Duration::from_secs(1)).await;
    assert!(task.is_finished(), "the settler ends within its patience");
    assert_eq!(run.occupancy.now().held, 0);
}
