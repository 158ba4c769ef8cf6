use super::*;

/// Minute `i` of the hour 10:00–10:59 UTC.
fn minute(i: u32, jobs: Option<[u64; 3]>, queue_visible: Option<u64>) -> MinuteView {
    MinuteView {
        minute: format!("2026-11-22T10:{i:02}:00Z"),
        succeeded: jobs.map(|j| j[0]),
        failed: jobs.map(|j| j[1]),
        handed_back: jobs.map(|j| j[2]),
        queue_visible,
    }
}

/// The chart, checked to be well-formed: every element closed, in order.
fn chart(minutes: &[MinuteView], queue: &str) -> String {
    let mut o = String::new();
    render(&mut o, minutes, queue);
    let mut open: Vec<&str> = Vec::new();
    for tag in o
        .split('<')
        .skip(1)
        .map(|t| &t[..t.find('>').expect("a closed tag")])
    {
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(closing), "{o}");
        } else if !tag.ends_with('/') {
            open.push(tag.split(' ').next().unwrap());
        }
    }
    assert!(open.is_empty(), "unclosed {open:?}: {o}");
    o
}

#[test]
fn an_empty_history_says_so_and_draws_no_minute() {
    let svg = chart(&[], "work");
    assert!(svg.starts_with("<svg class=\"chart\""), "{svg}");
    assert!(svg.ends_with("</svg>"));
    assert!(svg.contains("no figures yet"), "{svg}");
    assert!(
        svg.contains("not counting yet"),
        "the whole hour shaded: {svg}"
    );
    assert!(!svg.contains("class=\"min\""));
    assert!(!svg.contains("<circle"));
    assert!(!svg.contains("<polyline"));
    assert!(
        !svg.contains(">queue</text>"),
        "no queue scale without a reading"
    );
    assert!(svg.contains(">jobs/min</text>"));
}

#[test]
fn a_full_hour_draws_every_minute_on_the_scales() {
    let minutes: Vec<MinuteView> = (0..60)
        .map(|i| {
            minute(
                i,
                Some([u64::from(i) % 7, 1, u64::from(i == 30)]),
                Some(u64::from(i) * 3),
            )
        })
        .collect();
    let svg = chart(&minutes, "work");
    assert_eq!(svg.matches("<g class=\"min\"").count(), 60);
    assert_eq!(svg.matches("<circle class=\"depth\"").count(), 60);
    assert_eq!(svg.matches("<polyline").count(), 1, "one unbroken line");
    assert!(!svg.contains("class=\"gap\""), "{svg}");
    assert!(svg.contains(
        "data-minute=\"2026-11-22T10:30:00Z\" data-succeeded=\"2\" data-failed=\"1\" data-handed-back=\"1\""
    ));
    assert!(svg.contains("<title>10:30 UTC: 2 succeeded, 1 failed, 1 handed back</title>"));
    assert!(svg.contains("<title>10:59 UTC: 177 visible in work</title>"));
    // Scales: at most 6+1 jobs a minute → 10; 177 visible → 200.
    assert!(
        svg.contains(">10</text>") && svg.contains(">5</text>"),
        "{svg}"
    );
    assert!(
        svg.contains(&format!("fill=\"{QUEUE}\">200</text>")),
        "{svg}"
    );
    // The hour's quarters along the bottom, the newest minute at the right.
    for t in ["10:00", "10:15", "10:30", "10:45"] {
        assert!(svg.contains(&format!(">{t}</text>")), "{t}: {svg}");
    }
    assert!(svg.contains(&format!("cx=\"{:.1}\"", RIGHT - STEP / 2.0)));
    // A minute of 7 on a scale of 10: 70% of the plot's height, stacked.
    let plot = BOTTOM - TOP;
    let m6 = svg
        .split("data-minute=\"2026-11-22T10:06:00Z\"")
        .nth(1)
        .unwrap();
    let m6 = &m6[..m6.find("</g>").unwrap()];
    assert!(
        m6.contains(&format!(
            "height=\"{:.1}\" fill=\"{SUCCEEDED}\"",
            plot * 0.6
        )),
        "{m6}"
    );
    assert!(
        m6.contains(&format!("y=\"{:.1}\"", BOTTOM - plot * 0.7)),
        "{m6}"
    );
    assert!(m6.contains(&format!("fill=\"{FAILED}\"")) && !m6.contains(HANDED_BACK));
}

#[test]
fn more_than_an_hour_keeps_the_newest_sixty_minutes() {
    let mut minutes = vec![minute(0, Some([9, 9, 9]), None)];
    minutes.extend((0..60).map(|i| minute(i, Some([1, 0, 0]), None)));
    let svg = chart(&minutes, "work");
    assert_eq!(svg.matches("<g class=\"min\"").count(), 60);
    assert!(!svg.contains("data-succeeded=\"9\""));
}

#[test]
fn gaps_are_shaded_and_break_the_queue_line() {
    let minutes = vec![
        minute(55, Some([1, 0, 0]), Some(4)),
        minute(56, Some([0, 0, 0]), Some(3)),
        minute(57, None, None),
        minute(58, Some([2, 0, 0]), Some(1)),
        minute(59, Some([0, 0, 0]), Some(0)),
    ];
    let svg = chart(&minutes, "work");
    assert!(
        svg.contains("not counting yet"),
        "55 minutes before the first: {svg}"
    );
    assert!(svg.contains("<title>10:57 UTC: no figures (drainerd was not counting)</title>"));
    assert_eq!(svg.matches("<g class=\"min\"").count(), 4);
    assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
    assert_eq!(svg.matches("<circle class=\"depth\"").count(), 4);
    // A minute with nothing ended still has its figures and tooltip.
    assert!(svg.contains("<title>10:59 UTC: 0 succeeded, 0 failed, 0 handed back</title>"));
    // The shaded slots before the first minute are labelled too.
    assert!(svg.contains(">10:15</text>"), "{svg}");
}

#[test]
fn the_queue_name_is_escaped() {
    let minutes = vec![minute(59, Some([1, 0, 0]), Some(2))];
    let svg = chart(&minutes, "<script>\"q\"&'x'");
    assert!(!svg.contains("<script>"), "{svg}");
    let escaped = "&lt;script&gt;&quot;q&quot;&amp;&#39;x&#39;";
    assert_eq!(svg.matches(escaped).count(), 2, "title, tooltip: {svg}");
}

#[test]
fn scales_are_round() {
    assert_eq!(
        [0, 1, 2, 3, 6, 11, 20, 21, 99, 101, 4999].map(nice),
        [1, 1, 2, 5, 10, 20, 20, 50, 100, 200, 5000]
    );
}
