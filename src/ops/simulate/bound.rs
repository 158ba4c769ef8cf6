//! The clairvoyant lower bound (docs/simulate.md, "The lower bound").
//!
//! For a schedule — a start and an end for every job run — [`instance_ms`]
//! is the least instance time any fleet of `C`-slot instances that boot in
//! `b` can pay to run it, knowing the whole schedule in advance. Count the
//! runs in progress, `N(t)`; at least `L(t) = ceil(N(t) / C)` instances
//! must be up. Think of level `k` as "the k-th instance": it is needed
//! while `L(t) >= k`. Every stretch of a level costs a boot `b` to start,
//! and between two stretches a gap of `g` costs `min(g, b)` — keep the
//! instance through it, or let it go and boot another (ski rental, solved
//! with the future known). So:
//!
//! ```text
//! bound = ∫ L(t) dt  +  Σ over levels used [ b + Σ over its gaps min(g, b) ]
//! ```
//!
//! Why no fleet that ran the schedule pays less: a real fleet's bill is at
//! least `∫ R(t) dt + b × (instances that became ready)`, with `R(t) >=
//! L(t)` ready instances; each time the set `{R >= k}` starts a stretch,
//! some instance became ready; and among all sets containing `{L >= k}`,
//! "its time plus `b` per stretch" is smallest for exactly the choice
//! above. Billing granularity (the 60 s minimum, whole hours) only adds, so
//! it is left out. This is the bound of one schedule; a report table's
//! lower bound is the least over the zero-wait schedule and the schedules
//! of the rows it is printed with (`least`), so it is below every row's
//! cost.

use super::Ms;

/// Run intervals clipped to `[0, horizon)`, as sorted (time, starts)
/// events; ends sort before starts at the same instant.
fn events(runs: impl IntoIterator<Item = (Ms, Ms)>, horizon: Ms) -> Vec<(Ms, bool)> {
    let mut ev = Vec::new();
    for (s, e) in runs {
        let e = e.min(horizon);
        if s < e {
            ev.push((s, true));
            ev.push((e, false));
        }
    }
    ev.sort_unstable();
    ev
}

/// The most runs in progress at once.
pub fn peak(runs: impl IntoIterator<Item = (Ms, Ms)>, horizon: Ms) -> u64 {
    let (mut n, mut most) = (0u64, 0u64);
    for (_, start) in events(runs, horizon) {
        if start {
            n += 1;
            most = most.max(n);
        } else {
            n -= 1;
        }
    }
    most
}

/// The least instance-milliseconds that run `runs` with `c` slots per
/// instance and `boot` ms from launch to ready (see the module doc).
pub fn instance_ms(runs: impl IntoIterator<Item = (Ms, Ms)>, c: u32, boot: Ms, horizon: Ms) -> Ms {
    let c = u64::from(c.max(1));
    let mut n: u64 = 0;
    let mut levels: u64 = 0;
    // When each level last fell free.
    let mut free_since: Vec<Ms> = Vec::new();
    let (mut busy, mut extra, mut last) = (0 as Ms, 0 as Ms, 0 as Ms);
    for (t, start) in events(runs, horizon) {
        busy += levels * (t - last);
        last = t;
        if start {
            n += 1;
        } else {
            n -= 1;
        }
        let l = n.div_ceil(c);
        if l > levels {
            let k = levels as usize;
            if k == free_since.len() {
                free_since.push(t);
                extra += boot;
            } else {
                extra += (t - free_since[k]).min(boot);
            }
        } else if l < levels {
            free_since[l as usize] = t;
        }
        levels = l;
    }
    busy + extra
}

/// The report's lower bound: the least of the candidates (schedule name,
/// bound); `None` when there are none.
pub fn least<'a>(candidates: impl IntoIterator<Item = (&'a str, Ms)>) -> Option<(&'a str, Ms)> {
    candidates.into_iter().min_by_key(|(_, b)| *b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Ms = 1000;

    #[test]
    fn one_slot_ski_rental_by_hand() {
        // Two 10 s jobs 100 s apart, boot 60 s: busy 20, first boot 60,
        // the 90 s gap costs a boot (60) rather than 90.
        let runs = [(0, 10 * S), (100 * S, 110 * S)];
        assert_eq!(instance_ms(runs, 1, 60 * S, 1000 * S), 140 * S);
        // A 30 s gap is cheaper to keep.
        let runs = [(0, 10 * S), (40 * S, 50 * S)];
        assert_eq!(instance_ms(runs, 1, 60 * S, 1000 * S), (20 + 60 + 30) * S);
    }

    #[test]
    fn slots_pack_and_levels_pay_their_own_boot() {
        // Four overlapping jobs on 2-slot instances: two levels.
        let runs = [(0, 10 * S), (0, 10 * S), (0, 10 * S), (5 * S, 10 * S)];
        assert_eq!(instance_ms(runs, 2, 60 * S, 1000 * S), (20 + 120) * S);
        assert_eq!(peak(runs, 1000 * S), 4);
        // Back to back on one slot: no gap, one boot.
        let runs = [(0, 10 * S), (10 * S, 20 * S)];
        assert_eq!(instance_ms(runs, 1, 60 * S, 1000 * S), 80 * S);
        // Clipped at the horizon.
        assert_eq!(instance_ms([(0, 100 * S)], 1, 0, 30 * S), 30 * S);
        assert_eq!(instance_ms(Vec::new(), 1, 60 * S, 30 * S), 0);
    }

    proptest! {
        #[test]
        fn between_the_work_and_the_work_plus_a_boot_per_run(
            runs in proptest::collection::vec((0u64..5000, 1u64..500), 1..60),
            c in 1u32..5,
            boot in 0u64..300,
        ) {
            let runs: Vec<(Ms, Ms)> = runs.into_iter().map(|(s, r)| (s, s + r)).collect();
            let work: Ms = runs.iter().map(|(s, e)| e - s).sum();
            let b = instance_ms(runs.iter().copied(), c, boot, Ms::MAX);
            prop_assert!(b >= work / Ms::from(c) + boot);
            prop_assert!(b <= work + boot * runs.len() as Ms);
            prop_assert!(instance_ms(runs.iter().copied(), c, boot + 1, Ms::MAX) >= b);
        }
    }
}
