//! How much to receive: as many receives in flight as free slots need,
//! never more messages than free slots, one long poll when the queue is
//! idle.

/// What the next receive may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// No receive now.
    Nothing,
    /// The only receive: as soon as one slot is free, with up to `n`
    /// (slots that free up a moment later join it).
    UpTo(usize),
    /// One more receive beside those in flight, once exactly `n` slots
    /// are free: a full batch, so parallel receives never cost more
    /// requests per job than one.
    Exactly(usize),
}

/// The next receive, given the receives in flight, whether the queue is
/// backlogged (the last receive brought as many messages as it asked
/// for), and the batch a receive takes (`min(10, slots)`).
///
/// An idle or shallow queue gets one long poll at a time (idle cost: one
/// request per `wait_time`). A backlogged one gets another receive each
/// time a full batch of slots is free, so a box with many slots is not
/// bounded by one round trip per ten jobs. With ten slots or fewer a full
/// batch is every slot, so there is never a second receive and requests
/// per job stay at `1/min(10, slots) + 1/10`.
pub fn next_receive(in_flight: usize, backlogged: bool, batch: usize) -> Ask {
    match (in_flight, backlogged) {
        (0, _) => Ask::UpTo(batch),
        (_, true) => Ask::Exactly(batch),
        (_, false) => Ask::Nothing,
    }
}

/// Messages a receive may take: at most 10 (SQS's limit), at most the slots.
pub fn batch(slots: usize) -> usize {
    slots.clamp(1, 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_long_poll_when_idle_more_when_backlogged() {
        assert_eq!(next_receive(0, false, 10), Ask::UpTo(10));
        assert_eq!(next_receive(1, false, 10), Ask::Nothing);
        assert_eq!(next_receive(1, true, 10), Ask::Exactly(10));
        assert_eq!(next_receive(3, true, 10), Ask::Exactly(10));
        assert_eq!(batch(8), 8);
        assert_eq!(batch(64), 10);
    }

    proptest! {
        /// Whatever happens, the receives in flight never hold more slots
        /// than there are, and a second receive beside the first always
        /// asks for a full batch.
        #[test]
        fn never_more_than_the_free_slots(slots in 1usize..200, steps in proptest::collection::vec((any::<bool>(), 0usize..12), 1..60)) {
            let b = batch(slots);
            let mut held: Vec<usize> = Vec::new();
            for (backlogged, finish) in steps {
                if finish < held.len() { held.remove(finish); }
                let free = slots - held.iter().sum::<usize>();
                match next_receive(held.len(), backlogged, b) {
                    Ask::UpTo(n) if free > 0 => held.push(n.min(free)),
                    Ask::Exactly(n) if free >= n => {
                        prop_assert_eq!(n, b);
                        held.push(n)
                    }
                    _ => {}
                }
                prop_assert!(held.iter().sum::<usize>() <= slots);
                if slots <= 10 { prop_assert!(held.len() <= 1); }
            }
        }
    }
}
