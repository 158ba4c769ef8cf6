use std::collections::BTreeMap;
use std::path::Path;

use super::*;

const MIN: &str = "[queue]\nurl = \"https://sqs.eu-west-1.amazonaws.com/123456789012/jobs\"\n[job]\ncommand = [\"/bin/cat\"]\n";

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_str_with_env(text, Path::new("/etc/drainerd/drainerd.toml"), &env)
}

fn err(text: &str, env: &[(&str, &str)]) -> String {
    load(text, env).unwrap_err().to_string()
}

#[test]
fn minimal_file_gets_defaults() {
    let c = load(MIN, &[]).unwrap();
    assert_eq!(c.queue.wait_time, Dur::secs(20));
    assert_eq!(c.queue.lease, Dur::secs(60));
    assert_eq!(c.job.concurrency, 4);
    assert_eq!(c.region().as_deref(), Some("eu-west-1"));
}

#[test]
fn durations_accept_human_and_numbers() {
    let c = load(&format!("{MIN}timeout = \"1h 30m\"\nkill_grace = 5\n"), &[]).unwrap();
    assert_eq!(c.job.timeout, Dur::secs(5400));
    assert_eq!(c.job.kill_grace, Dur::secs(5));
    assert!(err(&format!("{MIN}timeout = \"soon\"\n"), &[]).contains("not a duration"));
}

#[test]
fn errors_name_the_field_and_the_fix() {
    let e = err("[queue]\nurl = \"https://x/q\"\n[job]\ncommand = []\n", &[]);
    assert!(
        e.contains("job.command is empty") && e.contains("set it to"),
        "{e}"
    );
    let e = err(&MIN.replace("[job]", "wait_time = \"30s\"\n[job]"), &[]);
    assert!(e.contains("queue.wait_time") && e.contains("20s"), "{e}");
    let e = err(&format!("{MIN}colour = \"blue\"\n"), &[]);
    assert!(e.contains("unknown field") && e.contains("colour"), "{e}");
    let e = err("[queue\nurl=", &[]);
    assert!(e.contains("not valid TOML"), "{e}");
    let e = err(
        &MIN.replace("[job]", "heartbeat_interval = \"60s\"\n[job]"),
        &[],
    );
    assert!(e.contains("queue.heartbeat_interval"), "{e}");
}

#[test]
fn environment_overrides_the_file() {
    let c = load(
        MIN,
        &[
            ("DRAINERD_JOB_CONCURRENCY", "9"),
            ("DRAINERD_QUEUE_LEASE", "2m"),
            ("DRAINERD_JOB_COMMAND", "[\"/bin/echo\", \"a b\"]"),
            ("DRAINERD_JOB_ENV_TOKEN", "s3cret"),
            ("DRAINERD_STATUS_CONTROL_TOKEN", "s3cret-s3cret-s3cret"),
        ],
    )
    .unwrap();
    assert_eq!(c.job.concurrency, 9);
    assert_eq!(c.queue.lease, Dur::secs(120));
    assert_eq!(c.job.command, vec!["/bin/echo", "a b"]);
    assert_eq!(c.job.env.get("TOKEN").map(String::as_str), Some("s3cret"));
    assert_eq!(
        c.status.control_token.as_deref(),
        Some("s3cret-s3cret-s3cret")
    );
    assert!(!c.to_redacted_toml().contains("s3cret"));
}

#[test]
fn status_fields_are_checked() {
    for (toml, field) in [
        ("[status]\nlisten = \"localhost\"\n", "status.listen"),
        (
            "[status]\nrefresh_interval = \"0s\"\n",
            "status.refresh_interval",
        ),
        (
            "[status]\ncontrol_token = \"short\"\n",
            "status.control_token",
        ),
        (
            "[status]\nactions_per_minute = 0\n",
            "status.actions_per_minute",
        ),
    ] {
        let e = load(&format!("{MIN}{toml}"), &[]).unwrap_err().to_string();
        assert!(e.contains(field), "{toml}: {e}");
    }
    let c = load(MIN, &[]).unwrap();
    assert_eq!(c.status.listen, "127.0.0.1:9753");
    assert!(c.status.enabled && c.status.control_token.is_none());
}

#[test]
fn environment_alone_is_a_configuration() {
    let c = load(
        "",
        &[
            ("DRAINERD_QUEUE_URL", "http://127.0.0.1:5000/123/q"),
            ("DRAINERD_JOB_COMMAND", "/bin/echo hello"),
        ],
    )
    .unwrap();
    assert_eq!(c.job.command, vec!["/bin/echo", "hello"]);
}

#[test]
fn unknown_or_malformed_variables_are_refused() {
    let e = err(MIN, &[("DRAINERD_QUEUE_ULR", "x")]);
    assert!(
        e.contains("DRAINERD_QUEUE_ULR is not a drainerd setting"),
        "{e}"
    );
    let e = err(MIN, &[("DRAINERD_JOB_CONCURRENCY", "four")]);
    assert!(e.contains("not a whole number"), "{e}");
}

#[test]
fn restart_only_changes_are_listed() {
    let a = load(MIN, &[]).unwrap();
    let b = load(
        MIN,
        &[
            (
                "DRAINERD_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/other",
            ),
            ("DRAINERD_JOB_CONCURRENCY", "1"),
        ],
    )
    .unwrap();
    let changes = a.restart_only_changes(&b);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].0, "queue.url");
}

#[test]
fn every_env_variable_maps_to_a_real_field() {
    let table: toml::Table = toml::to_string(
        &load(
            &format!("{MIN}working_dir = \"/tmp\"\n[queue.x]\n").replace("[queue.x]\n", ""),
            &[
                ("DRAINERD_QUEUE_REGION", "r"),
                ("DRAINERD_QUEUE_ENDPOINT_URL", "http://e"),
                ("DRAINERD_METADATA_ENDPOINT", "http://m"),
                ("DRAINERD_FLEET_ENDPOINT_URL", "http://f"),
                ("DRAINERD_FLEET_LIFECYCLE_HOOK", "h"),
                ("DRAINERD_FLEET_POWEROFF_AFTER", "5m"),
                ("DRAINERD_STATUS_CONTROL_TOKEN", "0123456789abcdef0"),
                ("DRAINERD_TRACKING_REGION", "r"),
                ("DRAINERD_TRACKING_ENDPOINT_URL", "http://d"),
            ],
        )
        .unwrap(),
    )
    .unwrap()
    .parse()
    .unwrap();
    for (var, path) in super::overrides::mapping() {
        let (sec, field) = path.split_once('.').unwrap();
        assert!(
            table[sec].as_table().unwrap().contains_key(field),
            "{var} -> {path} is not a field"
        );
    }
}

#[test]
fn region_from_urls() {
    assert_eq!(
        region_from_queue_url("https://sqs.us-east-2.amazonaws.com/1/q").as_deref(),
        Some("us-east-2")
    );
    assert_eq!(region_from_queue_url("http://127.0.0.1:5000/1/q"), None);
}

#[test]
fn an_idle_timeout_of_zero_is_an_error_not_never() {
    let e = err(&format!("{MIN}[fleet]\nidle_timeout = 0\n"), &[]);
    assert!(
        e.contains("fleet.idle_timeout") && e.contains("billing = \"never\""),
        "{e}"
    );
    let c = load(&format!("{MIN}[fleet]\nbilling = \"never\"\n"), &[]).unwrap();
    assert_eq!(c.fleet.billing, crate::decide::leave::Billing::Never);
}

#[test]
fn the_queue_url_may_name_an_instance_tag() {
    let c = load(
        &MIN.replace(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs",
            "tag:drainerd-queue",
        ),
        &[],
    )
    .unwrap();
    assert_eq!(c.queue.url, "tag:drainerd-queue");
    let e = err(
        &MIN.replace(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs",
            "tag:",
        ),
        &[],
    );
    assert!(e.contains("queue.url") && e.contains("tag:KEY"), "{e}");
}

#[test]
fn a_reload_takes_live_settings_and_keeps_restart_only_ones() {
    let running = load(MIN, &[]).unwrap();
    let new = load(
        MIN,
        &[
            (
                "DRAINERD_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/other",
            ),
            ("DRAINERD_JOB_LOG_LINES_PER_SECOND", "7"),
            ("DRAINERD_JOB_CONCURRENCY", "2"),
            ("DRAINERD_AGENT_LOG_LEVEL", "debug"),
        ],
    )
    .unwrap();
    let fields: Vec<&str> = running
        .restart_only_changes(&new)
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(fields, ["queue.url", "agent.log_level"]);
    let applied = new.with_restart_only_from(&running);
    assert_eq!(applied.queue.url, running.queue.url);
    assert_eq!(applied.agent.log_level, running.agent.log_level);
    assert_eq!(applied.job.log_lines_per_second, 7, "a live setting");
    assert_eq!(applied.job.concurrency, 2);
    assert!(running.restart_only_changes(&applied).is_empty());
}
