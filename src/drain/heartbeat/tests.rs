//! Lease renewals against a scripted queue, under paused time.

use std::collections::BTreeMap;

use super::*;
use crate::drain::fake::{FakeQueue, Reply};

fn config() -> Config {
    Config::from_str_with_env(
        "[queue]\nurl='https://sqs.fake/1/q'\nlease='10s'\nheartbeat_interval='3s'\n[job]\ncommand=['/bin/true']\n",
        std::path::Path::new("t.toml"),
        &BTreeMap::new(),
    )
    .unwrap()
}

fn lease(id: &str) -> Lease {
    let now = Instant::now();
    Lease {
        message_id: Arc::from(id),
        receipt: Receipt(format!("r-{id}")),
        received_at: now,
        visible_until: now + Duration::from_secs(10),
        hard_stop: now + Duration::from_secs(1000),
        lost: false,
    }
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_never_answers_stops_neither_other_renewals_nor_the_lost_lease_check() {
    let fake = Arc::new(FakeQueue::default());
    fake.reply(Reply::Stall);
    let leases = Arc::new(Leases::default());
    let counters = Arc::new(Counters::default());
    let (_tx, rx) = watch::channel(Arc::new(config()));
    let heartbeat = Heartbeat {
        queue: fake.clone(),
        leases: leases.clone(),
        config: rx,
        counters: counters.clone(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(heartbeat.run(stop.clone()));
    leases.insert(1, lease("a"));
    // Due after the 3 s interval: its renewal goes out and never answers.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(fake.calls().len(), 1);
    leases.insert(2, lease("b"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = fake.calls();
    assert_eq!(
        calls.len(),
        2,
        "b is renewed while a's call hangs: {calls:?}"
    );
    assert_eq!(
        calls[1].entries,
        [("r-b".to_string(), Some(Duration::from_secs(10)))]
    );
    assert_eq!(counters.messages().lease_renewals, 1);
    // a's lease (10 s) runs out while its renewal hangs: noticed and counted.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(counters.messages().leases_lost, 1);
    stop.cancel();
    task.await.unwrap();
}
