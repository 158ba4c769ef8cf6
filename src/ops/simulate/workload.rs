//! The workload: when each job is enqueued, how long it runs, and its
//! message group (optional), read from a trace (docs/simulate.md, "Trace
//! format") or made by a generator (`generate`).
//!
//! CSV, one job a line: `enqueue,run[,group]`. `enqueue` is seconds since
//! the trace's start (a decimal number) or an RFC 3339 timestamp (then made
//! relative to the earliest); `run` is the job's run time in seconds; an
//! empty or missing `group` means none. Blank lines and lines starting with
//! `#` are skipped; a first line whose `enqueue` field is neither is taken
//! for a header. JSON Lines (`.jsonl`): `{"enqueue": 12.5, "run": 30,
//! "group": "tenant-a"}`, `enqueue` a number or a timestamp string.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use super::{Ms, SimError, SECOND};

/// No message group.
pub const NO_GROUP: u32 = u32::MAX;

/// One job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Enqueued at, since the workload's start.
    pub enqueue: Ms,
    /// Run time (at least 1 ms).
    pub run: Ms,
    /// Index into [`Workload::groups`], or [`NO_GROUP`]. Jobs of one group
    /// run one at a time, in order (a FIFO queue's message group).
    pub group: u32,
}

/// Jobs sorted by enqueue time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Workload {
    pub jobs: Vec<Job>,
    /// Message group names, by index.
    pub groups: Vec<String>,
    /// Where it came from, for the report.
    pub source: String,
}

impl Workload {
    /// Sorts `jobs` by enqueue time (stable: ties keep their order).
    pub fn new(mut jobs: Vec<Job>, groups: Vec<String>, source: String) -> Workload {
        jobs.sort_by_key(|j| j.enqueue);
        Workload {
            jobs,
            groups,
            source,
        }
    }

    /// Time of the last enqueue.
    pub fn span(&self) -> Ms {
        self.jobs.last().map_or(0, |j| j.enqueue)
    }

    /// Sum of run times.
    pub fn work(&self) -> Ms {
        self.jobs.iter().map(|j| j.run).sum()
    }

    /// Writes the workload as CSV (`enqueue,run,group`, seconds to the ms).
    ///
    /// # Errors
    /// The writer failed.
    pub fn write_csv(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "enqueue,run,group")?;
        for j in &self.jobs {
            let group = self.groups.get(j.group as usize).map_or("", String::as_str);
            let sep = if group.is_empty() { "" } else { "," };
            writeln!(out, "{},{}{sep}{group}", seconds(j.enqueue), seconds(j.run))?;
        }
        Ok(())
    }
}

/// `12.5` for 12 500 ms, `3` for 3 000.
fn seconds(t: Ms) -> String {
    if t % SECOND == 0 {
        (t / SECOND).to_string()
    } else {
        let s = format!("{}.{:03}", t / SECOND, t % SECOND);
        s.trim_end_matches('0').to_string()
    }
}

/// An enqueue time as read: relative seconds or an absolute timestamp.
enum When {
    Relative(Ms),
    Absolute(std::time::SystemTime),
}

fn secs_value(v: f64, what: &str) -> Result<Ms, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{what} {v} must be a number of seconds >= 0"));
    }
    Ok((v * 1000.0).round() as Ms)
}

fn when(field: &str) -> Result<When, String> {
    let f = field.trim();
    if let Ok(v) = f.parse::<f64>() {
        return secs_value(v, "enqueue").map(When::Relative);
    }
    humantime::parse_rfc3339_weak(f)
        .map(When::Absolute)
        .map_err(|_| {
            format!("enqueue {f:?} is neither seconds since the start nor an RFC 3339 time")
        })
}

fn run_time(field: &str) -> Result<Ms, String> {
    let f = field.trim();
    let v: f64 = f
        .parse()
        .map_err(|_| format!("run time {f:?} is not a number of seconds"))?;
    run_ms(v)
}

fn run_ms(v: f64) -> Result<Ms, String> {
    match secs_value(v, "run time")? {
        0 => Err(format!("run time {v} must be above 0 (at least 0.001 s)")),
        r => Ok(r),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    enqueue: serde_json::Value,
    run: f64,
    #[serde(default)]
    group: Option<String>,
}

/// Reads a trace. `jsonl` picks JSON Lines, else CSV; `name` is for errors.
///
/// # Errors
/// An unreadable stream, a malformed line (its number and what is wrong),
/// or no jobs at all.
pub fn parse(input: impl BufRead, name: &str, jsonl: bool) -> Result<Workload, SimError> {
    let mut rows: Vec<(When, Ms, Option<String>)> = Vec::new();
    let bad = |line: usize, problem: String| SimError::Trace {
        path: name.into(),
        line,
        problem,
    };
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|source| SimError::Read {
            path: name.into(),
            source,
        })?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if jsonl {
            let l: Line = serde_json::from_str(text).map_err(|e| bad(n + 1, e.to_string()))?;
            let w = match &l.enqueue {
                serde_json::Value::Number(v) => {
                    secs_value(v.as_f64().unwrap_or(-1.0), "enqueue").map(When::Relative)
                }
                serde_json::Value::String(s) => when(s),
                other => Err(format!("enqueue {other} is not seconds or a timestamp")),
            }
            .map_err(|p| bad(n + 1, p))?;
            let r = run_ms(l.run).map_err(|p| bad(n + 1, p))?;
            rows.push((w, r, l.group.filter(|g| !g.is_empty())));
            continue;
        }
        let mut fields = text.split(',');
        let first = fields.next().unwrap_or("");
        let w = match when(first) {
            Ok(w) => w,
            Err(_) if rows.is_empty() && !first.trim().is_empty() => continue, // header
            Err(p) => return Err(bad(n + 1, p)),
        };
        let r = run_time(fields.next().unwrap_or("")).map_err(|p| bad(n + 1, p))?;
        let g = fields.next().map(str::trim).filter(|g| !g.is_empty());
        if fields.next().is_some() {
            return Err(bad(
                n + 1,
                "more than three fields (enqueue,run,group)".into(),
            ));
        }
        rows.push((w, r, g.map(str::to_string)));
    }
    if rows.is_empty() {
        return Err(SimError::Empty(name.into()));
    }
    let earliest = rows
        .iter()
        .filter_map(|(w, _, _)| match w {
            When::Absolute(t) => Some(*t),
            When::Relative(_) => None,
        })
        .min();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut groups = Vec::new();
    let jobs = rows
        .into_iter()
        .map(|(w, run, g)| {
            let enqueue = match w {
                When::Relative(t) => t,
                When::Absolute(t) => {
                    super::ms(t.duration_since(earliest.unwrap_or(t)).unwrap_or_default())
                }
            };
            let group = g.map_or(NO_GROUP, |g| {
                *index.entry(g.clone()).or_insert_with(|| {
                    groups.push(g);
                    groups.len() as u32 - 1
                })
            });
            Job {
                enqueue,
                run,
                group,
            }
        })
        .collect();
    Ok(Workload::new(jobs, groups, name.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Workload, SimError> {
        parse(text.as_bytes(), "t.csv", false)
    }

    #[test]
    fn csv_with_header_comments_and_groups() {
        let w = csv("enqueue,run,group\n# a comment\n\n10,30\n2.5,1.25,a\n3,1,a\n").unwrap();
        assert_eq!(w.jobs.len(), 3);
        assert_eq!(w.jobs[0].enqueue, 2500, "sorted by enqueue");
        assert_eq!(w.jobs[0].run, 1250);
        assert_eq!(w.jobs[0].group, 0);
        assert_eq!(w.jobs[1].group, 0);
        assert_eq!(w.jobs[2].group, NO_GROUP);
        assert_eq!(w.groups, vec!["a".to_string()]);
    }

    #[test]
    fn timestamps_are_made_relative() {
        let w = csv("2026-03-01T10:00:05Z,2\n2026-03-01T10:00:00Z,1\n").unwrap();
        assert_eq!(w.jobs[0].enqueue, 0);
        assert_eq!(w.jobs[1].enqueue, 5000);
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let e = csv("0,1\n5,abc\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("\"abc\""), "{e}");
        let e = csv("0,0\n").unwrap_err().to_string();
        assert!(e.contains("above 0"), "{e}");
        let e = csv("1,1\nnope,1\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("RFC 3339"), "{e}");
        assert!(matches!(csv("# nothing\n"), Err(SimError::Empty(_))));
    }

    #[test]
    fn jsonl_and_round_trip_through_csv() {
        let text =
            "{\"enqueue\": 1.5, \"run\": 2, \"group\": \"g\"}\n{\"enqueue\": 0, \"run\": 0.001}\n";
        let w = parse(text.as_bytes(), "t.jsonl", true).unwrap();
        assert_eq!(w.jobs.len(), 2);
        let mut out = Vec::new();
        w.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "enqueue,run,group\n0,0.001\n1.5,2,g\n");
        let back = csv(&text).unwrap();
        assert_eq!(back.jobs, w.jobs);
    }
}
