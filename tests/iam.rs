//! The IAM policy in packaging/ grants exactly the AWS actions drainerd's
//! code calls: no more (least privilege), no fewer (nothing fails with
//! AccessDenied in production).

use std::collections::BTreeSet;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `service:Action` for every `.client.<operation>()` (or `.poll.`) call in `file`.
fn calls(file: &str, service: &str) -> BTreeSet<String> {
    let text: String = std::fs::read_to_string(Path::new(ROOT).join("src").join(file))
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    // `.client.op()` everywhere; SQS's long poll has a client of its own
    // (`.poll.receive_message()`).
    text.replace(".poll.", ".client.")
        .split(".client.")
        .skip(1)
        .filter_map(|rest| rest.split_once("()").map(|(op, _)| op.to_string()))
        .filter(|op| op.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(|op| {
            // Batch calls are authorized by the single-message action.
            let action = pascal(&op)
                .replace("MessageBatch", "Message")
                .replace("VisibilityBatch", "Visibility");
            format!("{service}:{action}")
        })
        .collect()
}

/// Every `Action` the policy file grants.
fn granted(file: &str) -> BTreeSet<String> {
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap())
            .unwrap_or_else(|e| panic!("{file} is not valid JSON: {e}"));
    assert_eq!(policy["Version"], "2012-10-17");
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|s| assert_eq!(s["Effect"], "Allow"))
        .flat_map(|s| {
            s["Action"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
        })
        .collect()
}

/// The producer/operator policy: `drainerd enqueue`, `job`, `queue`,
/// `dlq redrive`, `table create` (and the client library).
#[test]
fn the_client_policy_lists_exactly_the_actions_the_client_calls() {
    let mut code = calls("ops/enqueue.rs", "sqs");
    code.extend(calls("ops/admin.rs", "sqs"));
    code.extend(calls("ops/table.rs", "dynamodb"));
    // The enqueuer writes Queued through tracking::Table::write.
    code.extend(calls("tracking/mod.rs", "dynamodb"));
    assert!(
        code.contains("sqs:SendMessage") && code.contains("dynamodb:CreateTable"),
        "{code:?}"
    );
    assert_eq!(
        granted("packaging/iam-policy-client.json"),
        code,
        "client policy actions vs SDK calls in src/ops/"
    );
}

#[test]
fn the_policy_lists_exactly_the_actions_the_code_calls() {
    let mut code = calls("aws/sqs/mod.rs", "sqs");
    code.extend(calls("aws/autoscaling.rs", "autoscaling"));
    // Job-state tracking (optional): the agent's transition writes.
    code.extend(calls("tracking/mod.rs", "dynamodb"));
    assert!(
        code.contains("sqs:ReceiveMessage")
            && code.contains("autoscaling:TerminateInstanceInAutoScalingGroup"),
        "{code:?}"
    );

    assert_eq!(
        granted("packaging/iam-policy.json"),
        code,
        "policy actions vs SDK calls in src/"
    );
}
