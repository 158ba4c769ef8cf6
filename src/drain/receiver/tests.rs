//! The receive loop against a scripted queue, under paused time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::config::Config;
use crate::decide::outcome::Action;
use crate::drain::fake::{message, FakeQueue, Receive};
use crate::drain::heartbeat::Leases;
use crate::drain::occupancy::Occupancy;
use crate::drain::output::LineBudget;
use crate::status::counters::Counters;

fn config() -> Config {
    // Every body is above max_message_bytes: a message is rejected at once,
    // without a process, so slots free up as fast as receives bring work.
    Config::from_str_with_env(
        "[queue]\nurl='https://sqs.fake/1/q'\nwait_time='20s'\nmax_message_bytes=1\n[job]\ncommand=['/bin/true']\nconcurrency=3\n",
        std::path::Path::new("t.toml"),
        &BTreeMap::new(),
    )
    .unwrap()
}

struct Rig {
    fake: Arc<FakeQueue>,
    occupancy: Arc<Occupancy>,
    settled: mpsc::UnboundedReceiver<Request>,
    jobs: TaskTracker,
    intake: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(fake: Arc<FakeQueue>, slots: Arc<Slots>) -> Rig {
    let occupancy = Occupancy::new();
    let (tx, settled) = mpsc::unbounded_channel();
    let (_config_tx, config_rx) = watch::channel(Arc::new(config()));
    let ctx = Arc::new(JobContext {
        queue_url: fake.url().to_string(),
        config: config_rx,
        leases: Arc::new(Leases::default()),
        settle: tx,
        budget: Arc::new(LineBudget::new(100)),
        counters: Arc::new(Counters::default()),
        occupancy: occupancy.clone(),
        recorder: None,
        kill_by: watch::channel(None).1,
        run_as: None,
    });
    let jobs = TaskTracker::new();
    let intake = CancellationToken::new();
    let receiver = Receiver {
        queue: fake.clone(),
        slots,
        ctx,
        jobs: jobs.clone(),
        stop_jobs: CancellationToken::new(),
    };
    let task = tokio::spawn(receiver.run(intake.clone()));
    Rig {
        fake,
        occupancy,
        settled,
        jobs,
        intake,
        task,
    }
}

#[tokio::test(start_paused = true)]
async fn messages_arriving_after_intake_closed_are_handed_straight_back() {
    let fake = Arc::new(FakeQueue::default());
    fake.receive_next(Receive::Messages {
        after: Duration::from_secs(5),
        messages: vec![message("m1"), message("m2")],
    });
    let mut rig = start(fake, Arc::new(Slots::new(3)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        rig.fake.receive_calls(),
        [3],
        "one receive, for the 3 free slots"
    );
    assert_eq!(rig.occupancy.now().receiving, 1);
    rig.intake.cancel();
    rig.task.await.unwrap();
    let mut back = Vec::new();
    while let Ok(r) = rig.settled.try_recv() {
        back.push((r.message_id.to_string(), r.action));
    }
    assert_eq!(
        back,
        [
            ("m1".to_string(), Action::HandBack),
            ("m2".to_string(), Action::HandBack)
        ]
    );
    assert!(rig.jobs.is_empty(), "no job started after intake closed");
    assert_eq!(rig.occupancy.now().receiving, 0);
    assert_eq!(
        rig.fake.receive_calls().len(),
        1,
        "no receive after intake closed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_receive_asks_for_no_more_than_the_free_slots() {
    let fake = Arc::new(FakeQueue::default());
    let slots = Arc::new(Slots::new(3));
    let busy = slots.acquire_up_to(2).await;
    let rig = start(fake, slots);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rig.fake.receive_calls(), [1]);
    drop(busy);
    rig.intake.cancel();
    rig.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn no_receive_starts_while_paused() {
    let fake = Arc::new(FakeQueue::default());
    let occupancy_rig = start(fake, Arc::new(Slots::new(2)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(occupancy_rig.fake.receive_calls().len(), 1);
    // The first (empty) long poll is under way; pause, let it end.
    occupancy_rig.occupancy.pause(true);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(occupancy_rig.fake.receive_calls().len(), 1);
    occupancy_rig.occupancy.pause(false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(occupancy_rig.fake.receive_calls().len(), 2);
    occupancy_rig.intake.cancel();
    occupancy_rig.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_receive_backs_off_then_receives_again() {
    let fake = Arc::new(FakeQueue::default());
    fake.receive_next(Receive::Fail);
    let rig = start(fake, Arc::new(Slots::new(2)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rig.fake.receive_calls().len(), 1);
    // error_backoff(1, 1 s, ..) waits between 0.5 s and 1 s.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        rig.fake.receive_calls().len(),
        1,
        "no hot loop after an error"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rig.fake.receive_calls().len(), 2, "receiving again");
    rig.intake.cancel();
    rig.task.await.unwrap();
}

fn full(n: usize, after_ms: u64, tag: &str) -> Receive {
    Receive::Messages {
        after: Duration::from_millis(after_ms),
        messages: (0..n).map(|i| message(&format!("{tag}-{i}"))).collect(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_backlogged_queue_gets_parallel_receives_of_full_batches() {
    let fake = Arc::new(FakeQueue::default());
    for round in 0..6 {
        fake.receive_next(full(10, 500, &format!("r{round}")));
    }
    let rig = start(fake, Arc::new(Slots::new(32)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let asked = rig.fake.receive_calls();
    assert!(
        rig.fake.most_receiving() >= 2,
        "parallel receives: {asked:?}"
    );
    assert!(
        rig.fake.most_receiving() <= 3,
        "never more than 32 slots' worth"
    );
    assert_eq!(asked[0], 10);
    assert!(asked.iter().all(|n| *n <= 10), "{asked:?}");
    rig.intake.cancel();
    rig.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_queue_gets_one_long_poll_at_a_time() {
    let fake = Arc::new(FakeQueue::default());
    let rig = start(fake, Arc::new(Slots::new(64)));
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(rig.fake.most_receiving(), 1);
    assert_eq!(rig.fake.receive_calls().len(), 4, "one per 20 s wait");
    rig.intake.cancel();
    rig.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn ten_slots_or_fewer_never_receive_twice_at_once() {
    let fake = Arc::new(FakeQueue::default());
    for round in 0..6 {
        fake.receive_next(full(8, 300, &format!("r{round}")));
    }
    let rig = start(fake, Arc::new(Slots::new(8)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.fake.most_receiving(), 1);
    assert!(rig.fake.receive_calls().iter().all(|n| *n == 8));
    rig.intake.cancel();
    rig.task.await.unwrap();
}
