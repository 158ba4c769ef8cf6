//! The systemd units: they verify cleanly, their sandbox stays tight, and
//! their stop timeout leaves drainerd time to hand work back.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A throwaway root holding the units, systemd's own units, and the binaries
/// the units name, so `systemd-analyze --root` can check them offline.
fn unit_root() -> tempfile::TempDir {
    unit_root_with(false)
}

/// [`unit_root`], with `systemd/job-user.conf` as a drop-in of both units
/// when `job_user`.
fn unit_root_with(job_user: bool) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["usr/bin", "bin", "etc/systemd/system", "usr/lib/systemd"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(env!("CARGO_BIN_EXE_drainerd"), r.join("usr/bin/drainerd")).unwrap();
    std::fs::copy("/bin/kill", r.join("bin/kill")).unwrap();
    for unit in ["drainerd.service", "drainerd@.service"] {
        std::fs::copy(
            Path::new(ROOT).join("systemd").join(unit),
            r.join("etc/systemd/system").join(unit),
        )
        .unwrap();
    }
    if job_user {
        for unit in ["drainerd.service", "drainerd@.service"] {
            let d = r.join("etc/systemd/system").join(format!("{unit}.d"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(
                Path::new(ROOT).join("systemd/job-user.conf"),
                d.join("job-user.conf"),
            )
            .unwrap();
        }
    }
    let status = Command::new("cp")
        .args(["-r", "/lib/systemd/system"])
        .arg(r.join("usr/lib/systemd"))
        .status()
        .unwrap();
    assert!(status.success());
    root
}

fn analyze(args: &[&str], root: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(format!("--root={}", root.display()))
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed for this test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn both_units_verify_without_a_word() {
    let root = unit_root();
    let (ok, text) = analyze(
        &["verify", "drainerd.service", "drainerd@fast.service"],
        root.path(),
    );
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

fn exposure(unit: &str, root: &Path) -> (f64, String) {
    let (_, text) = analyze(&["security", "--offline=true", unit], root);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in:\n{text}"));
    (score, text)
}

#[test]
fn both_units_keep_an_exposure_score_at_or_below_3() {
    let root = unit_root();
    for unit in ["drainerd.service", "drainerd@fast.service"] {
        let (score, text) = exposure(unit, root.path());
        println!("{unit}: exposure {score}");
        assert!(score <= 3.0, "{unit}: exposure {score} > 3.0\n{text}");
        // No capability at all without the job-user drop-in.
        assert!(
            text.contains("✓ CapabilityBoundingSet=~CAP_SET(UID"),
            "{text}"
        );
    }
}

#[test]
fn the_job_user_drop_in_verifies_and_adds_only_its_three_capabilities() {
    let root = unit_root_with(true);
    let (ok, text) = analyze(
        &["verify", "drainerd.service", "drainerd@fast.service"],
        root.path(),
    );
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
    let base = unit_root();
    for unit in ["drainerd.service", "drainerd@fast.service"] {
        let (score, text) = exposure(unit, root.path());
        let (before, _) = exposure(unit, base.path());
        println!("{unit} with job-user.conf: exposure {score} (without: {before})");
        // The three capabilities and the shared user namespace cost a
        // little; the rest of the sandbox stays.
        assert!(score <= 4.0, "{unit}: exposure {score} > 4.0\n{text}");
        assert!(
            text.contains("✗ CapabilityBoundingSet=~CAP_SET(UID"),
            "{text}"
        );
        for kept in ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_(DAC_"] {
            let line = text
                .lines()
                .find(|l| l.contains(&format!("CapabilityBoundingSet=~{kept}")))
                .unwrap_or_else(|| panic!("no {kept} line in {text}"));
            assert!(line.contains('✓'), "{unit}: {line}");
        }
    }
    let text = std::fs::read_to_string(Path::new(ROOT).join("systemd/job-user.conf")).unwrap();
    let caps: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(caps, ["CAP_SETUID", "CAP_SETGID", "CAP_KILL"]);
}

fn unit_value(unit: &str, key: &str) -> String {
    let text = std::fs::read_to_string(PathBuf::from(ROOT).join("systemd").join(unit)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{unit} has no {key}="))
        .to_string()
}

#[test]
fn the_stop_timeout_covers_a_full_drain() {
    // The defaults an operator gets: a long poll in flight, the drain
    // timeout, then the kill grace, then settling every message (bounded
    // whatever the network does), all before systemd's SIGKILL.
    let c = drainerd::config::Config::from_str_with_env(
        "[queue]\nurl = \"https://sqs.us-east-1.amazonaws.com/1/q\"\n[job]\ncommand = [\"/bin/true\"]\n",
        Path::new("defaults.toml"),
        &std::collections::BTreeMap::new(),
    )
    .unwrap();
    let needed = c.queue.wait_time.0
        + c.agent.drain_timeout.0
        + c.job.kill_grace.0
        + drainerd::supervisor::EXIT_PATIENCE;
    for unit in ["drainerd.service", "drainerd@.service"] {
        let stop = humantime::parse_duration(&unit_value(unit, "TimeoutStopSec")).unwrap();
        assert!(
            stop > needed,
            "{unit}: TimeoutStopSec {stop:?} <= {needed:?}"
        );
        assert_eq!(
            unit_value(unit, "KillMode"),
            "mixed",
            "{unit}: SIGTERM to drainerd alone"
        );
        assert_eq!(unit_value(unit, "Type"), "notify");
    }
}

#[test]
fn the_restart_policy_survives_three_minutes_of_unreachable_sqs_at_boot() {
    // SQS or IAM unreachable at boot: each start waits queue.start_timeout,
    // exits 69, and systemd restarts it RestartSec later. The unit must not
    // give up (StartLimitBurst starts within StartLimitIntervalSec) before
    // the network has been back for a while.
    let c = drainerd::config::Config::from_str_with_env(
        "[queue]\nurl = \"https://sqs.us-east-1.amazonaws.com/1/q\"\n[job]\ncommand = [\"/bin/true\"]\n",
        Path::new("defaults.toml"),
        &std::collections::BTreeMap::new(),
    )
    .unwrap();
    let outage = std::time::Duration::from_secs(180);
    for unit in ["drainerd.service", "drainerd@.service"] {
        assert_eq!(unit_value(unit, "Restart"), "on-failure");
        assert_eq!(unit_value(unit, "RestartPreventExitStatus"), "78");
        let restart = humantime::parse_duration(&unit_value(unit, "RestartSec")).unwrap();
        let burst: u32 = unit_value(unit, "StartLimitBurst").parse().unwrap();
        let period = c.queue.start_timeout.0 + restart;
        // Starts that fail during the outage, plus the one that succeeds.
        let starts = (outage.as_secs() / period.as_secs()) as u32 + 2;
        assert!(
            starts <= burst,
            "{unit}: {starts} starts in a 3-minute outage, StartLimitBurst {burst}"
        );
    }
}
