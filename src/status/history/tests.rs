use proptest::prelude::*;

use super::*;

/// Minute `m`, second `s` of a day in 2027 (a whole hour: minute 0 is xx:00).
fn at(m: u64, s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 / 3600 * 3600 + m * 60 + s)
}

fn ended(succeeded: u64, failed: u64, handed_back: u64) -> Totals {
    Totals {
        succeeded,
        failed,
        handed_back,
    }
}

fn jobs(series: &[Minute]) -> Vec<Option<u64>> {
    series.iter().map(|m| m.jobs.map(|j| j.succeeded)).collect()
}

#[test]
fn nothing_before_the_first_sample() {
    let h = History::default();
    assert!(h.series(at(5, 0), ended(3, 0, 0)).is_empty());
}

#[test]
fn the_current_minute_is_counted_live() {
    let h = History::default();
    h.sample(at(0, 10), ended(2, 1, 0));
    h.sample(at(0, 11), ended(2, 1, 0));
    let s = h.series(at(0, 30), ended(5, 2, 1));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].start, at(0, 0));
    assert_eq!(
        s[0].jobs,
        Some(ended(3, 1, 1)),
        "counted from the first sample"
    );
    assert_eq!(s[0].queue_visible, None);
}

#[test]
fn a_minute_closes_at_the_first_sample_past_it() {
    let h = History::default();
    h.sample(at(0, 0), ended(0, 0, 0));
    h.sample(at(0, 59), ended(4, 0, 0));
    // Past the boundary, before the next sample: the same answer as after it.
    let before = h.series(at(1, 0), ended(5, 0, 0));
    h.sample(at(1, 0), ended(5, 0, 0));
    let after = h.series(at(1, 0), ended(5, 0, 0));
    assert_eq!(before, after);
    // One job ended between the last sample of minute 0 and the first of
    // minute 1: it counts in minute 1 (sampling is once a second).
    assert_eq!(jobs(&after), [Some(4), Some(1)]);
    h.sample(at(1, 30), ended(7, 0, 0));
    assert_eq!(
        jobs(&h.series(at(1, 40), ended(9, 0, 0))),
        [Some(4), Some(5)]
    );
}

#[test]
fn minutes_without_a_sample_are_gaps_and_their_jobs_are_not_lost() {
    let h = History::default();
    h.sample(at(0, 0), ended(0, 0, 0));
    h.sample(at(0, 50), ended(1, 0, 0));
    // The loop is silent for minutes 1 to 3.
    h.sample(at(4, 5), ended(6, 0, 0));
    let s = h.series(at(4, 6), ended(6, 0, 0));
    assert_eq!(jobs(&s), [Some(1), None, None, None, Some(5)]);
    let start: Vec<SystemTime> = s.iter().map(|m| m.start).collect();
    assert_eq!(start, [at(0, 0), at(1, 0), at(2, 0), at(3, 0), at(4, 0)]);
}

#[test]
fn the_ring_wraps_and_keeps_the_last_hour() {
    let h = History::default();
    for m in 0..150 {
        h.sample(at(m, 0), ended(m, 0, 0));
        h.sample(at(m, 30), ended(m + 1, 0, 0));
        h.queue_depth(at(m, 31), m);
    }
    let s = h.series(at(149, 40), ended(150, 0, 0));
    assert_eq!(s.len(), MINUTES);
    assert_eq!(s[0].start, at(90, 0));
    assert_eq!(s[59].start, at(149, 0));
    assert!(s.iter().all(|m| m.jobs == Some(ended(1, 0, 0))), "{s:?}");
    let depths: Vec<u64> = s.iter().map(|m| m.queue_visible.unwrap()).collect();
    assert_eq!(depths, (90..150).collect::<Vec<_>>());
    // Two hours later with no sample since: the old minutes are gone;
    // nothing was counted since.
    let s = h.series(at(260, 0), ended(150, 0, 0));
    assert_eq!(s.len(), MINUTES);
    assert!(s.iter().all(|m| m.queue_visible.is_none()));
    assert_eq!(jobs(&s).iter().flatten().sum::<u64>(), 0);
}

#[test]
fn queue_depth_only_where_it_was_read_and_the_last_read_wins() {
    let h = History::default();
    h.sample(at(0, 0), ended(0, 0, 0));
    h.queue_depth(at(0, 10), 40);
    h.queue_depth(at(0, 50), 35);
    h.sample(at(1, 0), ended(0, 0, 0));
    h.sample(at(2, 0), ended(0, 0, 0));
    h.queue_depth(at(2, 15), 12);
    let s = h.series(at(2, 20), ended(0, 0, 0));
    let depths: Vec<Option<u64>> = s.iter().map(|m| m.queue_visible).collect();
    assert_eq!(depths, [Some(35), None, Some(12)]);
    assert!(s.iter().all(|m| m.jobs == Some(Totals::default())));
    // A read for a minute the ring has recycled since changes nothing.
    h.sample(at(62, 0), ended(0, 0, 0));
    h.queue_depth(at(2, 30), 99);
    let s = h.series(at(62, 1), ended(0, 0, 0));
    assert!(s.iter().all(|m| m.queue_visible != Some(99)), "{s:?}");
}

#[test]
fn a_depth_read_before_the_first_sample_starts_the_series() {
    let h = History::default();
    h.queue_depth(at(0, 20), 7);
    h.sample(at(1, 5), ended(0, 0, 0));
    let s = h.series(at(1, 6), ended(2, 0, 0));
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].jobs, s[0].queue_visible), (None, Some(7)));
    assert_eq!(s[1].jobs, Some(ended(2, 0, 0)));
}

#[test]
fn a_clock_that_goes_back_keeps_counting_the_same_minute() {
    let h = History::default();
    h.sample(at(10, 0), ended(0, 0, 0));
    h.sample(at(10, 30), ended(2, 0, 0));
    h.sample(at(8, 0), ended(3, 0, 0));
    h.sample(at(10, 40), ended(4, 0, 0));
    assert_eq!(jobs(&h.series(at(10, 45), ended(4, 0, 0))), [Some(4)]);
}

proptest! {
    /// Within the hour every job that ended after the first sample is in
    /// exactly one minute, however the samples fall.
    #[test]
    fn every_job_is_counted_once(
        steps in proptest::collection::vec((0u64..200, 0u64..4, 0u64..3, 0u64..2), 1..15)
    ) {
        let h = History::default();
        let (mut t, mut totals) = (0, Totals::default());
        h.sample(at(0, 0), totals);
        for (dt, s, f, b) in steps {
            t += dt;
            totals.succeeded += s;
            totals.failed += f;
            totals.handed_back += b;
            h.sample(at(0, t), totals);
        }
        let later = ended(totals.succeeded + 1, totals.failed, totals.handed_back);
        let series = h.series(at(0, t), later);
        let sum = series.iter().filter_map(|m| m.jobs).fold(Totals::default(), |a, j| Totals {
            succeeded: a.succeeded + j.succeeded,
            failed: a.failed + j.failed,
            handed_back: a.handed_back + j.handed_back,
        });
        prop_assert_eq!(sum, later);
    }
}
