//! The simulated queue: messages visible now, in arrival order, and the
//! FIFO rule for message groups (one message of a group in flight at a
//! time, in order). A killed job's message is out of the queue until its
//! visibility ends (the engine schedules that).

use std::collections::VecDeque;

use super::workload::NO_GROUP;

#[derive(Debug, Default)]
pub(super) struct Queue {
    /// Visible and receivable.
    ready: VecDeque<u32>,
    /// Visible but behind their group's message in flight, per group.
    blocked: Vec<VecDeque<u32>>,
    blocked_len: usize,
    /// A group has a message ready, running or invisible after a kill.
    held: Vec<bool>,
}

impl Queue {
    pub fn new(groups: usize) -> Queue {
        Queue {
            blocked: vec![VecDeque::new(); groups],
            held: vec![false; groups],
            ..Queue::default()
        }
    }

    /// ApproximateNumberOfMessagesVisible.
    pub fn visible(&self) -> u64 {
        (self.ready.len() + self.blocked_len) as u64
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub fn pop(&mut self) -> Option<u32> {
        self.ready.pop_front()
    }

    /// A new message.
    pub fn arrive(&mut self, job: u32, group: u32) {
        if group == NO_GROUP {
            self.ready.push_back(job);
        } else if self.held[group as usize] {
            self.blocked[group as usize].push_back(job);
            self.blocked_len += 1;
        } else {
            self.held[group as usize] = true;
            self.ready.push_back(job);
        }
    }

    /// A killed or handed-back message is visible again (its group stays
    /// held: it is still the group's head).
    pub fn returned(&mut self, job: u32) {
        self.ready.push_back(job);
    }

    /// A job of `group` finished and its message was deleted: the group's
    /// next message, if any, may be received.
    pub fn finished(&mut self, group: u32) {
        if group == NO_GROUP {
            return;
        }
        match self.blocked[group as usize].pop_front() {
            Some(next) => {
                self.blocked_len -= 1;
                self.ready.push_back(next);
            }
            None => self.held[group as usize] = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_has_one_message_in_flight_in_order() {
        let mut q = Queue::new(1);
        q.arrive(0, 0);
        q.arrive(1, 0);
        q.arrive(2, NO_GROUP);
        assert_eq!(q.visible(), 3);
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), None, "1 waits for 0");
        assert_eq!(q.visible(), 1);
        q.returned(0); // 0 was killed and is visible again
        assert_eq!(q.pop(), Some(0));
        q.finished(0);
        assert_eq!(q.pop(), Some(1));
        q.finished(0);
        q.arrive(3, 0);
        assert_eq!(q.pop(), Some(3), "the group is free again");
    }
}
