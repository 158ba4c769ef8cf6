//! Benchmark helper: the CPU floor of running N no-op jobs.
//!
//! Spawns and reaps `/bin/true` N times from a minimal loop and prints the
//! CPU milliseconds used (this process plus its reaped children, and each
//! part), so the drain benchmark can report drainerd's cost above what any
//! runner pays.
//! Usage: `spawn_floor N`.

use std::process::Command;
use std::time::Instant;

fn cpu_ms(who: nix::sys::resource::UsageWho) -> f64 {
    let u = nix::sys::resource::getrusage(who).expect("getrusage");
    let t =
        |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 * 1000.0 + tv.tv_usec() as f64 / 1000.0;
    t(u.user_time()) + t(u.system_time())
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let start = Instant::now();
    for _ in 0..n {
        let status = Command::new("/bin/true").status().expect("spawn /bin/true");
        assert!(status.success());
    }
    let wall = start.elapsed();
    let me = cpu_ms(nix::sys::resource::UsageWho::RUSAGE_SELF);
    let kids = cpu_ms(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
    println!(
        "{{\"jobs\": {n}, \"cpu_ms\": {:.1}, \"self_ms\": {me:.1}, \"children_ms\": {kids:.1}, \"wall_ms\": {:.1}}}",
        me + kids,
        wall.as_secs_f64() * 1000.0
    );
}
