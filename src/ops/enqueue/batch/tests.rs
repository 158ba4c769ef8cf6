//! The batching and retry rules against a fake SendMessageBatch that fails
//! chosen entries, as SQS does (HTTP 200 with a `Failed` list; moto never
//! does this, so the fake stands in for it).

use std::cell::RefCell;
use std::collections::HashMap;

use super::*;

fn entries(n: usize, size: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            body: format!("{i:04}{}", "x".repeat(size.saturating_sub(4))),
            attributes: vec![],
            ..Entry::default()
        })
        .collect()
}

/// Fails an entry (by body) as many times as `failures` says, with the
/// given sender fault; records every body it accepted and every call.
struct Fake {
    failures: RefCell<HashMap<String, (u32, bool)>>,
    whole_call_fails: Option<usize>,
    accepted: RefCell<Vec<String>>,
    calls: RefCell<Vec<usize>>,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            failures: RefCell::new(HashMap::new()),
            whole_call_fails: None,
            accepted: RefCell::new(vec![]),
            calls: RefCell::new(vec![]),
        }
    }
    fn fail(self, body: &str, times: u32, sender_fault: bool) -> Fake {
        self.failures
            .borrow_mut()
            .insert(body.to_string(), (times, sender_fault));
        self
    }
}

impl BatchSender for Fake {
    async fn send_batch(&self, batch: &[&Entry]) -> Result<BatchReply, String> {
        assert!(batch.len() <= 10, "more than 10 entries in one call");
        let call = self.calls.borrow().len();
        self.calls.borrow_mut().push(batch.len());
        if self.whole_call_fails == Some(call) {
            return Err("dispatch failure: connection reset".into());
        }
        let mut reply = BatchReply::default();
        for (k, e) in batch.iter().enumerate() {
            let mut f = self.failures.borrow_mut();
            match f.get_mut(&e.body) {
                Some((n, fault)) if *n > 0 => {
                    *n -= 1;
                    reply.failed.push(EntryError {
                        index: k,
                        code: if *fault {
                            "InvalidParameterValue"
                        } else {
                            "InternalError"
                        }
                        .into(),
                        message: "fake".into(),
                        sender_fault: *fault,
                    });
                }
                _ => {
                    self.accepted.borrow_mut().push(e.body.clone());
                    reply.sent.push((k, format!("m-{}", e.body)));
                }
            }
        }
        Ok(reply)
    }
}

#[test]
fn batches_hold_at_most_ten_and_256_kib() {
    assert_eq!(
        plan(&entries(25, 10))
            .iter()
            .map(Vec::len)
            .collect::<Vec<_>>(),
        [10, 10, 5]
    );
    // 100 KiB bodies: two per call.
    let big = entries(5, 100 * 1024);
    assert_eq!(plan(&big), vec![vec![0, 1], vec![2, 3], vec![4]]);
    // One body above the cap goes alone.
    let mut mixed = entries(3, 10);
    mixed[1].body = "x".repeat(300 * 1024);
    assert_eq!(plan(&mixed), vec![vec![0], vec![1], vec![2]]);
    assert!(plan(&[]).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_partial_failure_resends_only_the_failed_entries() {
    let es = entries(25, 4);
    let fake = Fake::new().fail("0003", 1, false).fail("0017", 2, false);
    let mut progress = vec![];
    let out = send_all(&fake, &es, |d| progress.push(d)).await;
    assert!(out.iter().all(|r| matches!(r, Sent::Ok(_))), "{out:?}");
    // Every body accepted exactly once.
    let mut accepted = fake.accepted.borrow().clone();
    accepted.sort();
    let mut want: Vec<String> = es.iter().map(|e| e.body.clone()).collect();
    want.sort();
    assert_eq!(accepted, want);
    // 3 batches + 1 retry of "0003" (alone) + 2 retries of "0017" (alone).
    assert_eq!(*fake.calls.borrow(), vec![10, 1, 10, 1, 1, 5]);
    assert_eq!(progress, vec![10, 20, 25]);
    assert_eq!(out[3], Sent::Ok("m-0003".into()));
}

#[tokio::test(start_paused = true)]
async fn sender_faults_are_not_retried_and_are_reported_per_item() {
    let es = entries(12, 4);
    let fake = Fake::new().fail("0005", 1, true).fail("0011", 99, false);
    let out = send_all(&fake, &es, |_| {}).await;
    assert_eq!(
        out[5],
        Sent::Refused {
            code: "InvalidParameterValue".into(),
            message: "fake".into()
        }
    );
    // A transient failure that never clears: 1 + ENTRY_RETRIES calls, then refused.
    assert!(matches!(&out[11], Sent::Refused { code, .. } if code == "InternalError"));
    assert_eq!(
        fake.calls.borrow().iter().filter(|&&n| n == 1).count(),
        ENTRY_RETRIES as usize
    );
    assert_eq!(out.iter().filter(|r| matches!(r, Sent::Ok(_))).count(), 10);
    assert_eq!(fake.accepted.borrow().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_fails_as_a_whole_is_not_repeated() {
    let es = entries(15, 4);
    let fake = Fake {
        whole_call_fails: Some(0),
        ..Fake::new()
    };
    let out = send_all(&fake, &es, |_| {}).await;
    assert!(
        out[..10].iter().all(|r| matches!(r, Sent::Unknown(_))),
        "{out:?}"
    );
    assert!(out[10..].iter().all(|r| matches!(r, Sent::Ok(_))));
    assert_eq!(*fake.calls.borrow(), vec![10, 5]);
}
