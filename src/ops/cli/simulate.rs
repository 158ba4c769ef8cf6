//! `drainerd simulate`: `drainerd.toml` and flags → the simulation
//! (`ops::simulate`) → the comparison table, sweeps and chart.
//!
//! This file owns the flags, their documented defaults, the progress line
//! and the files: it reads the configuration and the trace, and writes the
//! chart and `--write-trace`. Exit codes: 64 bad flags, 65 malformed trace,
//! 66 unreadable trace, 73 a file cannot be written, 78 bad configuration.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::cost::BillingArg;
use super::Failure;
use crate::config::overrides::ProcessEnv;
use crate::config::Config;
use crate::decide::leave::Billing;
use crate::exit;
use crate::ops::cost::DEFAULT_INSTANCE_PER_HOUR;
use crate::ops::simulate::{
    self, chart, generate, report, sweep, workload, AgentParams, Fleet, Ms, Pay, SimError,
    Workload, HOUR,
};

/// sysexits.h EX_CANTCREAT: an output file cannot be written.
const CANTCREAT: i32 = 73;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Configuration file: [job] concurrency, [queue] lease and
    /// heartbeat_interval, [metadata] spot reactions and [fleet] are read
    /// from it (DRAINERD_* variables apply).
    #[arg(
        long,
        env = "DRAINERD_CONFIG",
        default_value = "/etc/drainerd/drainerd.toml"
    )]
    pub config: PathBuf,
    /// Workload trace: CSV `enqueue,run[,group]` (seconds, or RFC 3339
    /// enqueue times) or JSON Lines (.jsonl); see docs/simulate.md.
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    pub trace: Option<PathBuf>,
    /// Generated workload instead: poisson:RATE, bursty[:RATE] or
    /// diurnal[:RATE]; RATE in jobs per second, or e.g. 2/m, 100/h, 5000/d.
    #[arg(long, value_name = "SPEC")]
    pub generate: Option<String>,
    /// Length of a generated workload.
    #[arg(long, default_value = "3d", value_parser = super::parse_duration)]
    pub duration: Duration,
    /// Mean run time of a generated job (Erlang-2 distributed).
    #[arg(long, default_value = "1m", value_parser = super::parse_duration)]
    pub run_time: Duration,
    /// Seed of the generator, the message placement and spot interruptions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the workload as CSV to FILE (to keep a generated one).
    #[arg(long, value_name = "FILE")]
    pub write_trace: Option<PathBuf>,
    /// The group's MinSize.
    #[arg(long, default_value_t = 1)]
    pub min_size: u32,
    /// The group's MaxSize.
    #[arg(long, default_value_t = 10)]
    pub max_size: u32,
    /// Target tracking's target: visible messages per InService instance
    /// (default: job.concurrency).
    #[arg(long, value_name = "N")]
    pub target_backlog: Option<f64>,
    /// One-minute datapoints above the target before scaling out.
    #[arg(long, default_value_t = 3)]
    pub scale_out_after: u32,
    /// One-minute datapoints below the target before the asg-scale-in
    /// policy scales in.
    #[arg(long, default_value_t = 15)]
    pub scale_in_after: u32,
    /// Launch to READY (receiving).
    #[arg(long, default_value = "90s", value_parser = super::parse_duration)]
    pub boot: Duration,
    /// The group's instance warm-up after READY (blocks scale-in).
    #[arg(long, default_value = "60s", value_parser = super::parse_duration)]
    pub warmup: Duration,
    /// Instance price, dollars per hour (default: t3.medium On-Demand, us-east-1).
    #[arg(long, default_value_t = DEFAULT_INSTANCE_PER_HOUR)]
    pub price: f64,
    /// How EC2 bills the instances (default: fleet.billing; per-second when that is never).
    #[arg(long, value_enum)]
    pub billing: Option<BillingArg>,
    /// Spot interruptions per instance-hour (0: On-Demand).
    #[arg(long, default_value_t = 0.0)]
    pub spot_rate: f64,
    /// End of the simulation (default: the last enqueue plus 1h).
    #[arg(long, value_parser = super::parse_duration)]
    pub horizon: Option<Duration>,
    /// Run the drainerd policy for each value of FIELD: FIELD=A..B (ten
    /// values), FIELD=A..B/STEP or FIELD=A,B,C; repeatable. Fields:
    /// idle_timeout, min_lifetime, hourly_window, check_interval,
    /// protection_linger, backlog_per_instance, billing, min_size,
    /// max_size, target_backlog, boot, warmup.
    #[arg(long, value_name = "FIELD=RANGE")]
    pub sweep: Vec<String>,
    /// A sweep's best value must keep the p95 wait within this.
    #[arg(long, value_parser = super::parse_duration)]
    pub max_p95_wait: Option<Duration>,
    /// Draw fleet size and backlog over time (and the first sweep) to FILE.svg.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::USAGE, e.to_string())
}

fn load_config(path: &Path) -> Result<Config, Failure> {
    if std::fs::metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Err(Failure::new(
            exit::CONFIG,
            format!(
                "config {}: not found; simulate reads [job], [queue] and [fleet] from it: pass --config PATH",
                path.display()
            ),
        ));
    }
    Config::load(path, &ProcessEnv).map_err(|e| Failure::new(exit::CONFIG, e.to_string()))
}

fn load_workload(a: &SimulateArgs) -> Result<Workload, Failure> {
    match (&a.trace, &a.generate) {
        (Some(p), _) => {
            let name = p.display().to_string();
            let file = File::open(p).map_err(|source| {
                Failure::new(
                    exit::NOINPUT,
                    SimError::Read {
                        path: name.clone(),
                        source,
                    }
                    .to_string(),
                )
            })?;
            let jsonl = p.extension().is_some_and(|e| e == "jsonl");
            workload::parse(BufReader::new(file), &name, jsonl).map_err(|e| {
                let code = if matches!(e, SimError::Read { .. }) {
                    exit::NOINPUT
                } else {
                    exit::DATAERR
                };
                Failure::new(code, e.to_string())
            })
        }
        (None, Some(spec)) => {
            let s = generate::parse_spec(spec).map_err(usage)?;
            if a.duration.is_zero() || a.run_time.is_zero() {
                return Err(usage("--duration and --run-time must be above 0"));
            }
            Ok(generate::generate(
                &s,
                simulate::ms(a.duration),
                simulate::ms(a.run_time),
                a.seed,
            ))
        }
        (None, None) => Err(usage(
            "simulate needs a workload: --trace FILE or --generate SPEC (e.g. --generate bursty)",
        )),
    }
}

fn fleet(a: &SimulateArgs, c: &Config, w: &Workload) -> Result<Fleet, Failure> {
    let concurrency = u32::try_from(c.job.concurrency).unwrap_or(u32::MAX);
    let f = Fleet {
        min: a.min_size,
        max: a.max_size,
        concurrency,
        boot: simulate::ms(a.boot),
        warmup: simulate::ms(a.warmup),
        target: a.target_backlog.unwrap_or(f64::from(concurrency)),
        out_after: a.scale_out_after,
        in_after: a.scale_in_after,
        price_per_hour: a.price,
        pay: match (a.billing, c.fleet.billing) {
            (Some(BillingArg::Hourly), _) | (None, Billing::Hourly) => Pay::Hourly,
            _ => Pay::PerSecond,
        },
        spot_per_hour: a.spot_rate,
        horizon: a.horizon.map_or(w.span() + HOUR, simulate::ms).max(1),
        lease: simulate::ms(c.queue.lease.0),
        heartbeat: simulate::ms(c.queue.heartbeat_interval.0),
    };
    f.check().map_err(usage)?;
    Ok(f)
}

/// The progress line: on stderr, in place, only on a terminal.
struct Progress {
    tty: bool,
    runs: usize,
    run: usize,
    current: String,
    horizon: Ms,
}

impl Progress {
    fn tick(&mut self, name: &str, t: Ms) {
        if !self.tty {
            return;
        }
        if name != self.current {
            self.current = name.to_string();
            self.run += 1;
        }
        let pct = t.saturating_mul(100) / self.horizon.max(1);
        eprint!(
            "\r\x1b[K[{}/{}] simulating {name}: {pct}%",
            self.run, self.runs
        );
    }

    fn clear(&self) {
        if self.tty && self.run > 0 {
            eprint!("\r\x1b[K");
        }
    }
}

fn write_file(
    path: &Path,
    what: &str,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::new(
            CANTCREAT,
            format!(
                "cannot write {what} {}: {e}; pass a writable path",
                path.display()
            ),
        )
    };
    let mut out = BufWriter::new(File::create(path).map_err(fail)?);
    body(&mut out).and_then(|()| out.flush()).map_err(fail)
}

/// # Errors
/// Bad flags (64), a malformed (65) or unreadable (66) trace, an output
/// file that cannot be written (73), a bad configuration (78).
pub fn run(a: &SimulateArgs) -> Result<(), Failure> {
    let config = load_config(&a.config)?;
    let w = load_workload(a)?;
    if let Some(p) = &a.write_trace {
        write_file(p, "trace", |out| w.write_csv(out))?;
    }
    let f = fleet(a, &config, &w)?;
    let agent = AgentParams::from_config(&config);
    let sweeps: Vec<sweep::Sweep> = a
        .sweep
        .iter()
        .map(|s| sweep::parse(s))
        .collect::<Result<_, _>>()
        .map_err(usage)?;
    print!("{}", report::header(&w, &f, &agent, a.seed));
    if config.fleet.dry_run {
        println!(
            "note: fleet.dry_run is set; simulated as if it were not (a dry run never leaves)"
        );
    }
    let mut bar = Progress {
        tty: std::io::stderr().is_terminal(),
        runs: 3 + sweeps.iter().map(|s| s.values.len()).sum::<usize>(),
        run: 0,
        current: String::new(),
        horizon: f.horizon,
    };
    let rows = simulate::compare(&w, &f, &agent, a.seed, &mut |n, t| bar.tick(n, t));
    let mut swept = Vec::new();
    for s in &sweeps {
        let points =
            sweep::run(&w, &f, &agent, a.seed, s, &mut |n, t| bar.tick(n, t)).map_err(usage)?;
        swept.push((s.field, points));
    }
    bar.clear();
    let labels: Vec<String> = rows.iter().map(|o| o.policy.clone()).collect();
    let main = || labels.iter().map(String::as_str).zip(rows.iter());
    // Each table's bound: the least over the zero-wait schedule and its
    // rows' schedules (a sweep's also over the main rows'), so a sweep
    // never moves the main table's numbers.
    let b = report::lower_bound(&w, &f, main());
    println!();
    print!("{}", report::table(main(), &b, &f));
    let max_p95 = a.max_p95_wait.map(simulate::ms);
    for (field, points) in &swept {
        let own = || points.iter().map(|p| (p.label.as_str(), &p.outcome));
        let b = report::lower_bound(&w, &f, main().chain(own()));
        println!("\nsweep of {field} (drainerd policy; other settings as above):");
        print!("{}", report::table(own(), &b, &f));
        match sweep::best(points, max_p95) {
            Some(k) => println!(
                "best: {} (cheapest per 1,000 jobs with no job killed, every job done{}){}",
                points[k].label,
                max_p95.map_or(String::new(), |m| format!(", p95 wait within {}", simulate::show(m))),
                if points.len() > 2 && (k == 0 || k == points.len() - 1) {
                    "; at the edge of the range: try values beyond it"
                } else {
                    ""
                }
            ),
            None => println!("best: none of the values killed nothing, finished every job and met --max-p95-wait"),
        }
    }
    if let Some(p) = &a.chart {
        let series: Vec<chart::Series> = labels
            .iter()
            .zip(rows.iter())
            .map(|(l, o)| chart::Series {
                label: l,
                samples: &o.series,
            })
            .collect();
        let first = swept.first().map(|(f, ps)| (*f, ps.as_slice()));
        let svg = chart::svg(&series, 0, f.horizon, first);
        write_file(p, "chart", |out| out.write_all(svg.as_bytes()))?;
        println!("\nchart: {}", p.display());
    }
    Ok(())
}
