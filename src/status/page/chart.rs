//! The last hour as a small inline SVG chart: jobs that ended per minute
//! as stacked bars (succeeded, failed, handed back; left scale) and the
//! queue's visible messages as a line (right scale), with the minutes of
//! the hour (UTC) along the bottom. No script and no external asset: it is
//! part of the page, under the page's CSP.
//!
//! Each minute with figures is a `<g class="min">` carrying its numbers
//! in `data-` attributes and a `<title>` (a browser's tooltip). Minutes
//! without job figures are shaded, and the queue line breaks where the
//! depth was not read: gaps are shown, never filled in.

use std::fmt::Write;

use super::esc;
use crate::status::history::MINUTES;
use crate::status::snapshot::MinuteView;

const WIDTH: f64 = 500.0;
const HEIGHT: f64 = 200.0;
/// The plot's left edge, top and bottom; a minute is `STEP` wide.
const LEFT: f64 = 34.0;
const TOP: f64 = 32.0;
const BOTTOM: f64 = 170.0;
const STEP: f64 = 7.0;
const RIGHT: f64 = LEFT + STEP * MINUTES as f64;

const SUCCEEDED: &str = "#1a7f37";
const FAILED: &str = "#b3261e";
const HANDED_BACK: &str = "#d4a72c";
const QUEUE: &str = "#0969da";

/// The smallest of 1, 2, 5, 10, 20, 50, ... at or above `v`.
fn nice(v: u64) -> u64 {
    let mut n = 1;
    loop {
        for m in [1, 2, 5] {
            if n * m >= v {
                return n * m;
            }
        }
        n *= 10;
    }
}

/// Minutes since midnight of an RFC 3339 time (`...THH:MM...`).
fn minute_of_day(t: &str) -> Option<u32> {
    let h: u32 = t.get(11..13)?.parse().ok()?;
    let m: u32 = t.get(14..16)?.parse().ok()?;
    Some(h * 60 + m)
}

fn hhmm(minute_of_day: u32) -> String {
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

fn y(v: u64, max: u64) -> f64 {
    BOTTOM - (BOTTOM - TOP) * v as f64 / max as f64
}

/// The chart of `minutes` (oldest first, the last one now), for a queue
/// called `queue`.
pub fn render(o: &mut String, minutes: &[MinuteView], queue: &str) {
    let minutes = &minutes[minutes.len().saturating_sub(MINUTES)..];
    let jobs =
        |m: &MinuteView| -> Option<[u64; 3]> { Some([m.succeeded?, m.failed?, m.handed_back?]) };
    let jobs_max = nice(
        minutes
            .iter()
            .filter_map(jobs)
            .map(|j| j.iter().sum())
            .max()
            .unwrap_or(0)
            .max(1),
    );
    let depth_max = minutes.iter().filter_map(|m| m.queue_visible).max();
    let queue_max = nice(depth_max.unwrap_or(0).max(1));
    // The minute of day at slot 0; the last minute sits at the right.
    let first_slot = MINUTES - minutes.len();
    let now = minutes.last().and_then(|m| minute_of_day(&m.minute));
    let slot_minute =
        |slot: usize| now.map(|n| (n + 1440 * 2 - (MINUTES - 1 - slot) as u32) % 1440);
    let x = |slot: usize| LEFT + STEP * slot as f64;

    let _ = write!(
        o,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" font-size=\"12\" font-family=\"system-ui,sans-serif\">\
<title>Jobs ended per minute and visible messages in {q}, last {MINUTES} minutes</title>",
        q = esc(queue)
    );
    // Legend.
    let mut lx = LEFT;
    for (color, label) in [
        (SUCCEEDED, "succeeded"),
        (FAILED, "failed"),
        (HANDED_BACK, "handed back"),
    ] {
        let _ = write!(
            o,
            "<rect x=\"{lx}\" y=\"3\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"12\">{label}</text>",
            lx + 14.0
        );
        lx += 24.0 + 7.0 * label.len() as f64;
    }
    let _ = write!(
        o,
        "<line x1=\"{lx}\" y1=\"8\" x2=\"{}\" y2=\"8\" stroke=\"{QUEUE}\" stroke-width=\"2\"/><text x=\"{}\" y=\"12\">queue visible</text>",
        lx + 12.0,
        lx + 16.0,
    );

    // Minutes without job figures: before the first one counted, and gaps.
    if first_slot > 0 {
        let _ = write!(
            o,
            "<rect class=\"gap\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"#eee\"><title>no figures: drainerd was not counting yet</title></rect>",
            STEP * first_slot as f64,
            BOTTOM - TOP
        );
    }
    for (i, m) in minutes.iter().enumerate() {
        if jobs(m).is_none() {
            let _ = write!(
                o,
                "<rect class=\"gap\" x=\"{}\" y=\"{TOP}\" width=\"{STEP}\" height=\"{}\" fill=\"#eee\"><title>{} UTC: no figures (drainerd was not counting)</title></rect>",
                x(first_slot + i),
                BOTTOM - TOP,
                slot_minute(first_slot + i).map(hhmm).unwrap_or_default()
            );
        }
    }

    // Scales: jobs per minute on the left, the queue on the right.
    for v in [0, jobs_max / 2, jobs_max] {
        if v == jobs_max / 2 && jobs_max % 2 == 1 {
            continue;
        }
        let yv = y(v, jobs_max);
        let _ = write!(
            o,
            "<line x1=\"{LEFT}\" y1=\"{yv:.1}\" x2=\"{RIGHT}\" y2=\"{yv:.1}\" stroke=\"#ddd\"/>\
<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            LEFT - 4.0,
            yv + 4.0
        );
    }
    let _ = write!(
        o,
        "<text x=\"2\" y=\"{}\" fill=\"#666\">jobs/min</text>",
        TOP - 5.0
    );
    if depth_max.is_some() {
        for v in [0, queue_max] {
            let _ = write!(
                o,
                "<text x=\"{}\" y=\"{:.1}\" fill=\"{QUEUE}\">{v}</text>",
                RIGHT + 4.0,
                y(v, queue_max) + 4.0
            );
        }
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" fill=\"{QUEUE}\">queue</text>",
            RIGHT + 4.0,
            TOP - 5.0
        );
    }
    // Minutes of the hour along the bottom.
    for slot in 0..MINUTES {
        if let Some(m) = slot_minute(slot).filter(|m| m % 15 == 0) {
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x(slot) + STEP / 2.0,
                BOTTOM + 14.0,
                hhmm(m)
            );
        }
    }
    let _ = write!(
        o,
        "<text x=\"{RIGHT}\" y=\"{}\" text-anchor=\"end\" fill=\"#666\">now (UTC)</text>",
        BOTTOM + 27.0
    );
    if minutes.is_empty() {
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\">no figures yet</text>",
            (LEFT + RIGHT) / 2.0,
            (TOP + BOTTOM) / 2.0
        );
    }

    // The bars, a group per minute with figures.
    for (i, m) in minutes.iter().enumerate() {
        let Some([s, f, h]) = jobs(m) else { continue };
        let slot = first_slot + i;
        let label = slot_minute(slot).map(hhmm).unwrap_or_default();
        let _ = write!(
            o,
            "<g class=\"min\" data-minute=\"{}\" data-succeeded=\"{s}\" data-failed=\"{f}\" data-handed-back=\"{h}\">\
<title>{label} UTC: {s} succeeded, {f} failed, {h} handed back</title>\
<rect x=\"{:.1}\" y=\"{TOP}\" width=\"{STEP}\" height=\"{}\" fill=\"transparent\"/>",
            esc(&m.minute),
            x(slot),
            BOTTOM - TOP
        );
        let mut base = 0;
        for (n, color) in [(s, SUCCEEDED), (f, FAILED), (h, HANDED_BACK)] {
            if n > 0 {
                let (top, bottom) = (y(base + n, jobs_max), y(base, jobs_max));
                let _ = write!(
                    o,
                    "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{}\" height=\"{:.1}\" fill=\"{color}\"/>",
                    x(slot) + 1.0,
                    STEP - 2.0,
                    bottom - top
                );
                base += n;
            }
        }
        o.push_str("</g>");
    }

    // The queue line, broken where the depth was not read.
    let mut run: Vec<(f64, f64)> = Vec::new();
    let flush = |o: &mut String, run: &mut Vec<(f64, f64)>| {
        if run.len() > 1 {
            let points: Vec<String> = run.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
            let _ = write!(
                o,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{QUEUE}\" stroke-width=\"2\"/>",
                points.join(" ")
            );
        }
        run.clear();
    };
    for (i, m) in minutes.iter().enumerate() {
        let Some(v) = m.queue_visible else {
            flush(o, &mut run);
            continue;
        };
        let (cx, cy) = (x(first_slot + i) + STEP / 2.0, y(v, queue_max));
        run.push((cx, cy));
        let _ = write!(
            o,
            "<circle class=\"depth\" data-minute=\"{}\" data-queue-visible=\"{v}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"2.5\" fill=\"{QUEUE}\">\
<title>{} UTC: {v} visible in {}</title></circle>",
            esc(&m.minute),
            slot_minute(first_slot + i).map(hhmm).unwrap_or_default(),
            esc(queue)
        );
    }
    flush(o, &mut run);
    o.push_str("</svg>");
}

#[cfg(test)]
mod tests;
