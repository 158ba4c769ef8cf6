//! Which finished messages to settle now and which may wait to share a
//! request.

/// SQS batch calls take at most this many entries.
pub const BATCH: usize = 10;

/// How many pending deletes and hand-backs to send now. Only full batches
/// go before the oldest has waited its linger (`due`); hand-backs at
/// visibility 0 (`urgent`: shutdown, interruption) go at once, since
/// another worker should have them now.
pub fn to_send(deletes: usize, releases: usize, urgent: bool, due: bool) -> (usize, usize) {
    let full = |n: usize| n - n % BATCH;
    if due {
        return (deletes, releases);
    }
    (
        full(deletes),
        if urgent { releases } else { full(releases) },
    )
}

#[cfg(test)]
mod tests {
    use super::to_send;

    #[test]
    fn only_full_batches_go_before_the_linger_ends() {
        assert_eq!(to_send(0, 0, false, false), (0, 0));
        assert_eq!(to_send(9, 3, false, false), (0, 0));
        assert_eq!(to_send(18, 10, false, false), (10, 10));
        assert_eq!(to_send(27, 0, false, false), (20, 0));
    }

    #[test]
    fn due_or_urgent_sends_the_rest() {
        assert_eq!(to_send(18, 3, false, true), (18, 3));
        // A hand-back at visibility 0 does not wait; deletes still may.
        assert_eq!(to_send(4, 3, true, false), (0, 3));
    }
}
