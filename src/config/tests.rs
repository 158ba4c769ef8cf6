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
        c.status.control_token.as_ref().map(|t| t.expose()),
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

/// Loads with the environment's warnings.
fn warnings(env: &[(&str, &str)]) -> Vec<String> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_str_with_warnings(MIN, Path::new("/etc/drainerd/drainerd.toml"), &env)
        .unwrap()
        .1
}

#[test]
fn unknown_variables_are_warned_about_and_malformed_ones_refused() {
    // A stray variable (a wrapper's own) must not stop the agent: warned
    // about, naming the nearest known variable, and ignored.
    let w = warnings(&[("DRAINERD_QUEUE_ULR", "x")]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("DRAINERD_QUEUE_ULR is not a drainerd setting")
            && w[0].contains("nearest: DRAINERD_QUEUE_URL"),
        "{w:?}"
    );
    let w = warnings(&[("DRAINERD_CMD", "/bin/wrapper")]);
    assert!(w[0].contains("nearest: DRAINERD_JOB_COMMAND"), "{w:?}");
    let w = warnings(&[("DRAINERD_JOB_CONCURENCY", "3")]);
    assert!(w[0].contains("nearest: DRAINERD_JOB_CONCURRENCY"), "{w:?}");
    // What drainerd itself sets for jobs, and the job.env families, are no
    // strangers.
    let w = warnings(&[
        ("DRAINERD_JOB_ID", "j"),
        ("DRAINERD_MESSAGE_ID", "m"),
        ("DRAINERD_RECEIVE_COUNT", "1"),
        ("DRAINERD_INTERRUPTIONS", "0"),
        ("DRAINERD_DEADLINE", "2026-01-01T00:00:00Z"),
        ("DRAINERD_ATTR_TENANT", "acme"),
        ("DRAINERD_JOB_ENV_X", "1"),
        ("DRAINERD_JOB_SECRET_ENV_Y", "2"),
        ("DRAINERD_CONFIG", "/x"),
    ]);
    assert!(w.is_empty(), "{w:?}");
    // The file stays strict; a malformed value is still an error.
    let e = err(&format!("{MIN}colour = 1\n"), &[]);
    assert!(e.contains("unknown field"), "{e}");
    let e = err(MIN, &[("DRAINERD_JOB_CONCURRENCY", "four")]);
    assert!(e.contains("not a whole number"), "{e}");
}

#[test]
fn an_unknown_variable_alone_is_no_configuration() {
    let env: BTreeMap<String, String> = [("DRAINERD_CMD".to_string(), "x".to_string())].into();
    let e = Config::load(Path::new("/nonexistent/drainerd.toml"), &env)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn secrets_are_never_shown() {
    let c = load(
        &format!("{MIN}[job.secret_env]\nDB_PASSWORD = \"pw-0123456789\"\n[status]\ncontrol_token = \"zq-secret-0123456789\"\n"),
        &[("DRAINERD_JOB_SECRET_ENV_API_KEY", "key-0123456789")],
    )
    .unwrap();
    let shown = [
        c.to_redacted_toml(),
        format!("{c:?}"),
        format!("{:?}", c.status),
        format!("{:?}", c.job),
    ];
    for s in &shown {
        for secret in ["pw-0123456789", "zq-secret-0123456789", "key-0123456789"] {
            assert!(!s.contains(secret), "{secret} shown in {s}");
        }
    }
    assert_eq!(c.job.secret_env["API_KEY"].expose(), "key-0123456789");
    // A reload that changes the token names the field, never the value.
    let other = load(
        &format!("{MIN}[status]\ncontrol_token = \"zq-secret-9876543210\"\n"),
        &[],
    )
    .unwrap();
    let changes = c.restart_only_changes(&other);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].0, "status.control_token");
    assert!(!format!("{changes:?}").contains("zq-"), "{changes:?}");
    // Nor does a refusal: a bad token, a token of the wrong type, or a
    // TOML error on its line.
    for text in [
        format!("{MIN}[status]\ncontrol_token = \"tok short\"\n"),
        format!("{MIN}[status]\ncontrol_token = 98765432109876543210\n"),
        format!("{MIN}[status]\ncontrol_token = \"zq-secret-0123456789\n"),
        format!("{MIN}[job.secret_env]\nX = 98765432109876543210\n"),
    ] {
        let e = err(&text, &[]);
        assert!(!e.contains("zq") && !e.contains("98765"), "{e}");
    }
    let e = err(
        &format!("{MIN}env = {{X = \"a\"}}\n[job.secret_env]\nX = \"b\"\n"),
        &[],
    );
    assert!(
        e.contains("job.secret_env.X") || e.contains("duplicate"),
        "{e}"
    );
}

#[test]
fn a_reload_keeps_every_status_field() {
    // The restart-only list names [status] field by field (so a changed
    // token is named, not shown): none may be missed.
    let running = load(MIN, &[]).unwrap();
    let new = load(
        &format!("{MIN}[status]\nenabled = false\nlisten = \"127.0.0.1:1\"\nrefresh_interval = \"2m\"\ncontrol_token = \"zq-secret-0123456789\"\nactions_per_minute = 9\nallowed_hosts = [\"h\"]\n"),
        &[],
    )
    .unwrap();
    let toml_fields = toml::to_string(&new.status).unwrap().lines().count();
    assert_eq!(
        toml_fields, 6,
        "a new [status] field: add it to RESTART_ONLY"
    );
    assert_eq!(running.restart_only_changes(&new).len(), 6);
    assert_eq!(new.with_restart_only_from(&running).status, running.status);
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
                ("DRAINERD_JOB_USER", "nobody"),
                ("DRAINERD_JOB_GROUP", "nogroup"),
                ("DRAINERD_STATUS_ALLOWED_HOSTS", "a.example b.example"),
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

#[test]
fn every_variable_drainerd_gives_a_job_is_known() {
    // A job that runs drainerd (`drainerd enqueue`) passes them back: no
    // warning for any of them.
    let runner =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/drain/runner.rs"))
            .unwrap();
    let names: Vec<String> = runner
        .split('"')
        .filter(|s| {
            s.starts_with("DRAINERD_") && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
        .map(|s| s.to_string())
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    let env: Vec<(&str, &str)> = names
        .iter()
        .map(|n| {
            (
                n.as_str(),
                if n == "DRAINERD_QUEUE_URL" {
                    "https://sqs.eu-west-1.amazonaws.com/1/q"
                } else {
                    "1"
                },
            )
        })
        .collect();
    assert!(warnings(&env).is_empty(), "{:?}", warnings(&env));
}
