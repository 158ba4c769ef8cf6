//! `drainerd enqueue`: one job from the command line or stdin, or many from
//! a file (one body per line, or a JSON object per line), batched.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{settings, Common, Failure};
use crate::config::overrides::ProcessEnv;
use crate::exit;
use crate::ops::enqueue::{self as client, EnqueueError, Enqueuer, Job};

#[derive(Args, Debug)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub common: Common,
    /// A message attribute for the job (repeatable); with --from-file, for
    /// every job (a line's own attributes win).
    #[arg(long = "attr", value_name = "K=V", value_parser = parse_attr)]
    pub attrs: Vec<(String, String)>,
    /// Hold each job back this long before it can run (at most 15m).
    #[arg(long, value_parser = parse_delay)]
    pub delay: Option<Duration>,
    /// The message group (required on a FIFO queue: a group's jobs run one
    /// at a time, in order); with --from-file, for every job (a line's own
    /// "group" wins).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// The deduplication id (FIFO queues: the same id within five minutes
    /// is queued once). Without it a FIFO queue needs content-based
    /// deduplication.
    #[arg(long, value_name = "ID", conflicts_with = "from_file")]
    pub dedup_id: Option<String>,
    /// Enqueue every line of this file (see README, "Enqueueing jobs").
    #[arg(long, value_name = "PATH", conflicts_with = "body")]
    pub from_file: Option<PathBuf>,
    /// The job's body (its stdin); `-` reads it from stdin.
    pub body: Option<String>,
}

fn parse_attr(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not K=V (e.g. --attr tenant=acme)")),
    }
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .or_else(|_| s.parse::<u64>().map(Duration::from_secs))
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30s or 5m"))?;
    if d > Duration::from_secs(900) {
        return Err(format!("{s} is above SQS's 15 minute delay limit"));
    }
    Ok(d)
}

/// One line of a jobs file that is not a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub line: usize,
    pub problem: String,
}

/// The jobs in a file's text, with their line numbers (1-based), and the
/// malformed lines. A line starting with `{` is a JSON object
/// `{"body": "...", "attributes": {"k": "v"}}`; any other non-empty line
/// is a body as it stands; empty lines are skipped.
pub fn parse_jobs(text: &str, common: &[(String, String)]) -> (Vec<(usize, Job)>, Vec<Malformed>) {
    let mut jobs = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let job = if trimmed.starts_with('{') {
            parse_object(trimmed).map(|mut j| {
                let mut attrs: Vec<(String, String)> = common
                    .iter()
                    .filter(|(k, _)| !j.attributes.iter().any(|(jk, _)| jk == k))
                    .cloned()
                    .collect();
                attrs.append(&mut j.attributes);
                j.attributes = attrs;
                j
            })
        } else {
            Ok(Job {
                body: raw.to_string(),
                attributes: common.to_vec(),
                ..Job::default()
            })
        };
        match job.and_then(|j| client::validate(&j).map(|()| j)) {
            Ok(j) => jobs.push((line, j)),
            Err(problem) => bad.push(Malformed { line, problem }),
        }
    }
    (jobs, bad)
}

fn parse_object(line: &str) -> Result<Job, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    const KEYS: [&str; 4] = ["body", "attributes", "group", "dedup_id"];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key {k:?} (only \"body\", \"attributes\", \"group\" and \"dedup_id\")"
        ));
    }
    let text = |k: &str| -> Result<Option<String>, String> {
        match obj.get(k) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("\"{k}\" is not a string")),
        }
    };
    let body = obj
        .get("body")
        .and_then(|b| b.as_str())
        .ok_or("no \"body\" string (to send a JSON body, put it in \"body\" as a string)")?;
    let mut attributes = Vec::new();
    if let Some(a) = obj.get("attributes") {
        let a = a.as_object().ok_or("\"attributes\" is not an object")?;
        for (k, v) in a {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return Err(format!("attribute {k:?} is not a string or number")),
            };
            attributes.push((k.clone(), v));
        }
    }
    Ok(Job {
        body: body.to_string(),
        attributes,
        group: text("group")?,
        dedup_id: text("dedup_id")?,
    })
}

pub async fn run(args: EnqueueArgs) -> Result<(), Failure> {
    let s = settings(&args.common, &ProcessEnv)?;
    let url = s.queue_url()?.to_string();
    let mut enqueuer = Enqueuer::new(s.sqs().await, &url);
    if let Some(d) = args.delay {
        enqueuer = enqueuer.with_delay(d);
    }
    if let Some(t) = s.table().await {
        enqueuer = enqueuer.with_tracking(t);
    }
    match args.from_file {
        Some(path) => from_file(&enqueuer, &path, &args.attrs, args.group.as_deref()).await,
        None => {
            let job = Job {
                attributes: args.attrs.clone(),
                group: args.group.clone(),
                dedup_id: args.dedup_id.clone(),
                ..Job::default()
            };
            one(&enqueuer, args.body, job).await
        }
    }
}

async fn one(enqueuer: &Enqueuer, body: Option<String>, job: Job) -> Result<(), Failure> {
    let body = match body.as_deref() {
        Some("-") => {
            let mut b = String::new();
            std::io::stdin().read_to_string(&mut b).map_err(|e| {
                Failure::new(
                    exit::NOINPUT,
                    format!("cannot read the body from stdin: {e}"),
                )
            })?;
            b
        }
        Some(b) => b.to_string(),
        None => return Err(Failure::new(
            exit::USAGE,
            "no job: give the body as an argument, `-` to read it from stdin, or --from-file PATH",
        )),
    };
    let job = Job { body, ..job };
    let result = enqueuer
        .enqueue_many(std::slice::from_ref(&job))
        .await
        .pop()
        .expect("one result per job");
    match result {
        Ok(id) => {
            println!("{id}");
            Ok(())
        }
        Err(e @ EnqueueError::Invalid(_)) => Err(Failure::new(exit::USAGE, e.to_string())),
        Err(e @ EnqueueError::Refused { .. }) => Err(Failure::new(exit::DATAERR, e.to_string())),
        Err(e @ EnqueueError::Unknown { .. }) => {
            Err(Failure::new(exit::UNAVAILABLE, e.to_string()))
        }
    }
}

async fn from_file(
    enqueuer: &Enqueuer,
    path: &std::path::Path,
    attrs: &[(String, String)],
    group: Option<&str>,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            exit::NOINPUT,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let (mut jobs, bad) = parse_jobs(&text, attrs);
    for (_, job) in &mut jobs {
        if job.group.is_none() {
            job.group = group.map(str::to_string);
        }
    }
    for b in &bad {
        eprintln!("{}:{}: {}; not sent", path.display(), b.line, b.problem);
    }
    let total = jobs.len();
    let tty = std::io::stderr().is_terminal();
    let mut next_report = 0;
    let progress = |done: usize| {
        if tty {
            let width = 30;
            let filled = (done * width).checked_div(total).unwrap_or(width);
            eprint!(
                "\r[{}{}] {done}/{total}",
                "#".repeat(filled),
                "-".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
        } else if done >= next_report || done == total {
            eprintln!("progress: {done}/{total} jobs sent");
            next_report = done + total.div_ceil(10).max(1);
        }
    };
    let only: Vec<Job> = jobs.iter().map(|(_, j)| j.clone()).collect();
    let results = enqueuer.enqueue_many_with_progress(&only, progress).await;
    if tty {
        eprintln!();
    }
    let (mut queued, mut refused, mut unknown) = (0, 0, 0);
    let mut out = std::io::stdout().lock();
    for ((line, _), r) in jobs.iter().zip(&results) {
        match r {
            Ok(id) => {
                queued += 1;
                let _ = writeln!(out, "{line}\t{id}");
            }
            Err(e) => {
                match e {
                    EnqueueError::Unknown { .. } => unknown += 1,
                    _ => refused += 1,
                }
                eprintln!("{}:{line}: {e}", path.display());
            }
        }
    }
    eprintln!(
        "{}: {queued} of {} jobs queued; {} malformed lines{}; {refused} refused by SQS; {unknown} with unknown outcome",
        path.display(),
        total + bad.len(),
        bad.len(),
        if bad.is_empty() {
            String::new()
        } else {
            format!(
                " (lines {})",
                bad.iter().map(|b| b.line.to_string()).collect::<Vec<_>>().join(", ")
            )
        },
    );
    if total > 0 && unknown == total {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            format!("no job reached the queue {}", enqueuer.queue_url()),
        ));
    }
    if !bad.is_empty() || refused > 0 || unknown > 0 {
        return Err(Failure::new(
            exit::DATAERR,
            "not every line was queued (see above)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bodies_or_objects_and_bad_ones_are_named() {
        let text = "plain body\n\n{\"body\": \"b2\", \"attributes\": {\"tenant\": \"acme\", \"n\": 3}}\n{\"body\": 5}\n{not json\n{\"body\": \"x\", \"extra\": 1}\n  another  \n";
        let common = vec![("tenant".to_string(), "default".to_string())];
        let (jobs, bad) = parse_jobs(text, &common);
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[0].0, 1);
        assert_eq!(jobs[0].1.body, "plain body");
        assert_eq!(jobs[0].1.attributes, common);
        assert_eq!(jobs[1].0, 3);
        assert_eq!(jobs[1].1.body, "b2");
        // The line's own tenant wins over --attr.
        assert_eq!(
            jobs[1].1.attributes,
            vec![
                ("n".to_string(), "3".to_string()),
                ("tenant".to_string(), "acme".to_string())
            ]
        );
        assert_eq!(jobs[2].0, 7);
        assert_eq!(
            bad.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        assert!(bad[1].problem.contains("not valid JSON"), "{bad:?}");
    }

    #[test]
    fn attribute_and_delay_flags_are_checked() {
        assert_eq!(parse_attr("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_attr("novalue").is_err());
        assert!(parse_attr("=v").is_err());
        assert_eq!(parse_delay("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_delay("45").unwrap(), Duration::from_secs(45));
        assert!(parse_delay("16m").is_err());
        assert!(parse_delay("soon").is_err());
    }
}
