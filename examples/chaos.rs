//! The chaos soak: drainerd drains N jobs (default 10,000) from moto
//! through a fault-injecting proxy while its metadata service misbehaves,
//! it is SIGKILLed and restarted, and spot notices hand its work to a fresh
//! agent. Prints jobs run, duplicates (and why), lost (must be 0), faults
//! injected, SIGKILLs and wall time; exits 1 unless every job ran and the
//! queue and its DLQ are empty. Run it with `scripts/chaos` (it builds
//! everything and ensures the venv with moto).
//!
//! The soak is `tests/chaos/soak.rs`, shared with `tests/chaos.rs`.

#[path = "../tests/support/faultproxy.rs"]
#[allow(dead_code)]
mod faultproxy;
#[path = "../tests/chaos/soak.rs"]
mod soak;

use std::path::PathBuf;
use std::time::Duration;

const USAGE: &str = "usage: chaos [--jobs N] [--binary PATH] [--imds-sim PATH] [--seed N] [--time-limit SECS] [--chaos-every SECS] [--keep]";

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut s = soak::Settings {
        jobs: 10_000,
        drainerd: root.join("target/release/drainerd"),
        imds_sim: root.join("target/release/imds-sim"),
        moto_server: root.join(".venv/bin/moto_server"),
        seed: 16,
        time_limit: Duration::ZERO,
        chaos_every: Duration::from_secs(8),
        progress: true,
        keep_files: false,
    };
    let mut limit = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{a} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        let num = |v: String| -> u64 {
            v.parse().unwrap_or_else(|_| {
                eprintln!("not a number: {v}\n{USAGE}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--jobs" => s.jobs = num(value()) as usize,
            "--binary" => s.drainerd = value().into(),
            "--imds-sim" => s.imds_sim = value().into(),
            "--seed" => s.seed = num(value()),
            "--time-limit" => limit = Some(Duration::from_secs(num(value()))),
            "--chaos-every" => s.chaos_every = Duration::from_secs(num(value())),
            "--keep" => s.keep_files = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ => {
                eprintln!("unknown argument {a}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    // Generous: a working agent drains ~10-20 jobs/s here under chaos.
    s.time_limit = limit.unwrap_or(Duration::from_secs(120 + s.jobs as u64 / 4));
    for (what, p) in [
        ("drainerd", &s.drainerd),
        ("imds-sim", &s.imds_sim),
        ("moto_server", &s.moto_server),
    ] {
        if !p.exists() {
            eprintln!(
                "chaos: {what} not found at {} (scripts/chaos builds and installs everything)",
                p.display()
            );
            std::process::exit(2);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(soak::run(s)) {
        Ok(report) => {
            println!("{report}");
            std::process::exit(if report.ok() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("chaos: set-up failed: {e}");
            std::process::exit(2);
        }
    }
}
