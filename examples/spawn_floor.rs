//! Benchmark helper: the CPU floor of running N no-op jobs.
//!
//! Spawns and reaps `/bin/true` N times from a minimal loop and prints the
//! CPU milliseconds used (this process plus its reaped children, and each
//! part), so the drain benchmark can report drainerd's cost above what any
//! runner pays.
//!
//! Back to back by default. With a RATE (jobs per second) the loop starts
//! BURST jobs together (1 if not given), waits for them, and sleeps until
//! the next burst is due: the pattern of a runner fed by a queue, which
//! gets a few messages per receive and waits on the network in between.
//! A process that starts after a wait finds colder caches than one
//! spawning back to back, and it and its children use more CPU per job.
//! Usage: `spawn_floor N [RATE [BURST]]`.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn cpu_ms(who: nix::sys::resource::UsageWho) -> f64 {
    let u = nix::sys::resource::getrusage(who).expect("getrusage");
    let t =
        |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 * 1000.0 + tv.tv_usec() as f64 / 1000.0;
    t(u.user_time()) + t(u.system_time())
}

fn arg<T: std::str::FromStr>(i: usize) -> Option<T> {
    std::env::args().nth(i).and_then(|a| a.parse().ok())
}

fn main() {
    let n: u32 = arg(1).unwrap_or(1000);
    let rate: f64 = arg(2).unwrap_or(0.0);
    let burst: u32 = arg::<u32>(3).unwrap_or(1).max(1);
    let start = Instant::now();
    let mut started = 0;
    while started < n {
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(f64::from(started) / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let k = burst.min(n - started);
        let children: Vec<Child> = (0..k)
            .map(|_| Command::new("/bin/true").spawn().expect("spawn /bin/true"))
            .collect();
        for mut c in children {
            assert!(c.wait().expect("wait").success());
        }
        started += k;
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
