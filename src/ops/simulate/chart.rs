//! `--chart FILE.svg`: fleet size and backlog over time for each policy,
//! and a sweep's cost and p95 wait per value. Hand-written SVG text; long
//! series are reduced to one point per pixel column (the column's highest
//! value, so peaks survive).

use std::fmt::Write;

use super::outcome::{per_1000, Sample};
use super::sweep::Point;
use super::{Ms, DAY, HOUR};

const W: f64 = 960.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 72.0;
const PANEL: f64 = 220.0;
const GAP: f64 = 64.0;
const COLORS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/// One policy's series, labelled.
pub struct Series<'a> {
    pub label: &'a str,
    pub samples: &'a [Sample],
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step giving about five ticks up to `max`.
fn step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// A tick label without float noise (`0.30000000000000004` → `0.3`).
fn round(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The highest value per pixel column, as (t, value).
fn reduce(samples: &[Sample], value: fn(&Sample) -> f64, horizon: Ms, px: usize) -> Vec<(Ms, f64)> {
    let mut cols: Vec<Option<(Ms, f64)>> = vec![None; px];
    for s in samples {
        let c = ((s.t as f64 / horizon.max(1) as f64) * px as f64) as usize;
        let c = c.min(px - 1);
        let v = value(s);
        if cols[c].is_none_or(|(_, old)| v > old) {
            cols[c] = Some((s.t, v));
        }
    }
    cols.into_iter().flatten().collect()
}

struct Frame {
    top: f64,
    ymax: f64,
    xmax: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        LEFT + (W - LEFT - RIGHT) * (v / self.xmax.max(f64::MIN_POSITIVE))
    }
    fn y(&self, v: f64) -> f64 {
        self.top + PANEL - PANEL * (v / self.ymax.max(f64::MIN_POSITIVE))
    }
}

/// Axes, grid and a title for a time panel.
fn time_axes(out: &mut String, f: &Frame, title: &str, unit: &str, horizon: Ms) {
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">{}</text>"#,
        f.top - 10.0,
        esc(title)
    );
    let ys = step(f.ymax);
    let mut v = 0.0;
    while v <= f.ymax + 1e-9 {
        let y = f.y(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
        v += ys;
    }
    let (tick, name) = if horizon > 2 * DAY {
        (DAY, "d")
    } else {
        (HOUR * (horizon / HOUR / 8).max(1), "h")
    };
    let mut t = 0;
    while t <= horizon {
        let x = f.x(t as f64);
        let label = if name == "d" { t / DAY } else { t / HOUR };
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}{name}</text>"##,
            f.top,
            f.top + PANEL,
            f.top + PANEL + 16.0
        );
        t += tick;
    }
    let _ = writeln!(
        out,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
        f.top + PANEL / 2.0,
        f.top + PANEL / 2.0,
        esc(unit)
    );
}

fn polyline(
    out: &mut String,
    f: &Frame,
    pts: &[(f64, f64)],
    color: &str,
    dash: bool,
    step_line: bool,
) {
    let mut d = String::new();
    let mut prev: Option<f64> = None;
    for &(x, y) in pts {
        if step_line {
            if let Some(py) = prev {
                let _ = write!(d, "{:.1},{:.1} ", f.x(x), f.y(py));
            }
        }
        let _ = write!(d, "{:.1},{:.1} ", f.x(x), f.y(y));
        prev = Some(y);
    }
    let _ = writeln!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="1.5"{} points="{}"/>"#,
        if dash {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        },
        d.trim_end()
    );
}

fn legend(out: &mut String, top: f64, items: &[(&str, &str)]) {
    let mut x = LEFT + 260.0;
    for (label, color) in items {
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="14" height="4" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            top - 16.0,
            x + 18.0,
            top - 10.0,
            esc(label)
        );
        x += 30.0 + 7.0 * label.len() as f64;
    }
}

/// The whole chart. `sweep` is a field name and its points, if any.
pub fn svg(
    series: &[Series],
    backlog_of: usize,
    horizon: Ms,
    sweep: Option<(&str, &[Point])>,
) -> String {
    let panels = if sweep.is_some() { 3.0 } else { 2.0 };
    let height = 40.0 + panels * (PANEL + GAP);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    let px = (W - LEFT - RIGHT) as usize;
    let hours = horizon as f64;
    // Fleet size.
    let live: Vec<Vec<(Ms, f64)>> = series
        .iter()
        .map(|s| reduce(s.samples, |x| f64::from(x.live), horizon, px))
        .collect();
    let top = 40.0;
    let ymax = live.iter().flatten().map(|p| p.1).fold(1.0, f64::max);
    let f = Frame {
        top,
        ymax: (ymax / step(ymax)).ceil() * step(ymax),
        xmax: hours,
    };
    time_axes(&mut out, &f, "Instances in the group", "instances", horizon);
    let items: Vec<(&str, &str)> = series
        .iter()
        .zip(COLORS.iter().cycle())
        .map(|(s, c)| (s.label, *c))
        .collect();
    legend(&mut out, top, &items);
    // The first series (drainerd) is drawn last, on top.
    for (k, pts) in live.iter().enumerate().rev() {
        let pts: Vec<(f64, f64)> = pts.iter().map(|&(t, v)| (t as f64, v)).collect();
        polyline(&mut out, &f, &pts, COLORS[k % COLORS.len()], false, true);
    }
    // Backlog.
    if let Some(s) = series.get(backlog_of) {
        let pts = reduce(s.samples, |x| x.visible as f64, horizon, px);
        let top = top + PANEL + GAP;
        let ymax = pts.iter().map(|p| p.1).fold(1.0, f64::max);
        let f = Frame {
            top,
            ymax: (ymax / step(ymax)).ceil() * step(ymax),
            xmax: hours,
        };
        let title = format!("Visible backlog ({}), peak per pixel", s.label);
        time_axes(&mut out, &f, &title, "messages", horizon);
        let pts: Vec<(f64, f64)> = pts.iter().map(|&(t, v)| (t as f64, v)).collect();
        polyline(
            &mut out,
            &f,
            &pts,
            COLORS[backlog_of % COLORS.len()],
            false,
            false,
        );
    }
    if let Some((field, points)) = sweep {
        sweep_panel(&mut out, 40.0 + 2.0 * (PANEL + GAP), field, points);
    }
    out.push_str("</svg>\n");
    out
}

fn sweep_panel(out: &mut String, top: f64, field: &str, points: &[Point]) {
    if points.is_empty() {
        return;
    }
    let xs: Vec<f64> = points.iter().map(|p| p.value.x()).collect();
    let (x0, x1) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let span = (x1 - x0).max(1e-9);
    let cost: Vec<f64> = points
        .iter()
        .map(|p| per_1000(p.outcome.cost, p.outcome.done))
        .collect();
    let p95: Vec<f64> = points
        .iter()
        .map(|p| p.outcome.waits.p95 as f64 / 1000.0)
        .collect();
    let raw = cost.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
    let cstep = step(raw);
    let ticks = (raw / cstep).ceil().max(1.0);
    let cmax = ticks * cstep;
    let wmax = p95.iter().copied().fold(1.0, f64::max) * 1.1;
    let f = Frame {
        top,
        ymax: cmax,
        xmax: span,
    };
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">Sweep of {}: $ per 1,000 jobs (solid, left) and p95 wait (dashed, right)</text>"#,
        top - 10.0,
        esc(field)
    );
    for k in 0..=ticks as u32 {
        let v = cstep * f64::from(k);
        let y = f.y(v);
        let w = (wmax * v / cmax * 1000.0) as Ms;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            round(v),
            W - RIGHT + 6.0,
            y + 4.0,
            super::show(w)
        );
    }
    for (p, &x) in points.iter().zip(&xs) {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
            f.x(x - x0),
            top + PANEL + 16.0,
            esc(&p.value.show())
        );
    }
    let cpts: Vec<(f64, f64)> = xs.iter().zip(&cost).map(|(&x, &c)| (x - x0, c)).collect();
    polyline(out, &f, &cpts, COLORS[0], false, false);
    for &(x, c) in &cpts {
        let _ = writeln!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
            f.x(x),
            f.y(c),
            COLORS[0]
        );
    }
    let wf = Frame {
        top,
        ymax: wmax,
        xmax: span,
    };
    let wpts: Vec<(f64, f64)> = xs.iter().zip(&p95).map(|(&x, &w)| (x - x0, w)).collect();
    polyline(out, &wf, &wpts, COLORS[1], true, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_steps() {
        assert_eq!(step(10.0), 2.0);
        assert_eq!(step(7.0), 2.0);
        assert_eq!(step(100.0), 20.0);
        assert_eq!(step(3.0), 1.0);
        assert_eq!(step(0.3), 0.1);
    }

    #[test]
    fn a_well_formed_svg_with_one_line_per_policy() {
        let a: Vec<Sample> = (0..600)
            .map(|k| Sample {
                t: k * 60_000,
                live: (k % 7) as u32,
                visible: k,
            })
            .collect();
        let s = svg(
            &[
                Series {
                    label: "a",
                    samples: &a,
                },
                Series {
                    label: "b<c",
                    samples: &a,
                },
            ],
            0,
            600 * 60_000,
            None,
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert_eq!(s.matches("<polyline").count(), 3, "two fleets, one backlog");
        assert!(s.contains("b&lt;c"));
    }
}
