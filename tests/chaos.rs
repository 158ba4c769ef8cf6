//! The chaos soak in the suite: about 1,000 jobs through a failing network
//! (resets, 500s, throttling, slow answers, black holes before and after
//! forwarding), a misbehaving metadata service, SIGKILLs and spot notices
//! with a fresh agent taking over. Every job must run, and the queue and
//! its dead-letter queue must end empty. The soak itself is
//! `tests/chaos/soak.rs`, shared with `examples/chaos.rs` (`scripts/chaos`
//! runs 10,000 jobs on a release build).

#[path = "support/faultproxy.rs"]
#[allow(dead_code)]
mod faultproxy;
#[path = "chaos/soak.rs"]
mod soak;

use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_through_chaos_lose_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // target/<profile>/deps/<test> → target/<profile>/imds-sim
    let exe = std::env::current_exe().unwrap();
    let imds_sim = exe.parent().unwrap().parent().unwrap().join("imds-sim");
    assert!(
        imds_sim.exists(),
        "{} is missing: build it with `cargo build -p imds-sim` (scripts/test does)",
        imds_sim.display()
    );
    let settings = soak::Settings {
        jobs: 1000,
        drainerd: env!("CARGO_BIN_EXE_drainerd").into(),
        imds_sim,
        moto_server: root.join(".venv/bin/moto_server"),
        seed: 16,
        // About 100 s on 2 cores (debug build); generous for a loaded
        // machine. A stalled agent shows in reruns and losses long before.
        time_limit: Duration::from_secs(240),
        chaos_every: Duration::from_secs(8),
        progress: true,
        keep_files: false,
    };
    let report = soak::run(settings).await.expect("the soak's set-up");
    assert!(report.ok(), "{report}");
    println!("{report}");
}
