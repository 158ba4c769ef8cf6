//! Plain values from SQS's answers: queue depths, redrive policies, queue
//! ARNs, and message attributes as environment names. The one parser of
//! each, used by the agent and by the operator commands alike.

use std::collections::HashMap;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

use crate::drain::queue::{
    Attribute, AttributeValue, EntryFailure, Receipt, Received, INTERRUPTIONS_ATTRIBUTE,
};

/// A queue's message counts (approximate, as SQS reports them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Depths {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub dead_letter_arn: Option<String>,
}

/// A queue's redrive policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    pub dlq_arn: String,
    pub max_receive_count: u32,
}

/// Parses the `RedrivePolicy` attribute (JSON; `maxReceiveCount` comes as a
/// string or a number).
pub fn parse_redrive_policy(json: &str) -> Option<RedrivePolicy> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let arn = v.get("deadLetterTargetArn")?.as_str()?.to_string();
    let max = match v.get("maxReceiveCount")? {
        serde_json::Value::String(s) => s.parse().ok()?,
        serde_json::Value::Number(n) => u32::try_from(n.as_u64()?).ok()?,
        _ => return None,
    };
    Some(RedrivePolicy {
        dlq_arn: arn,
        max_receive_count: max,
    })
}

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` → (ACCOUNT, NAME).
pub fn parse_queue_arn(arn: &str) -> Option<(&str, &str)> {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "sqs", _, account, name] if !account.is_empty() && !name.is_empty() => {
            Some((account, name))
        }
        _ => None,
    }
}

/// The error codes that mean "not allowed" (the role's policy, the queue's
/// policy, or the queue's KMS key): retrying cannot help.
pub fn access_denied(code: &str) -> bool {
    code.contains("AccessDenied") || code == "AuthorizationError"
}

/// The error codes SQS answers for a queue that does not exist (or that
/// these credentials may not see).
pub fn queue_missing(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist")
    )
}

pub(super) fn attributes_env(
    attrs: &HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>,
) -> Vec<(String, String)> {
    attr_env(
        attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.data_type(), v.string_value())),
    )
}

/// SQS allows 10 attributes per message; more are not passed on.
pub const MAX_ATTRIBUTES: usize = 10;
/// The longest attribute value passed on (bytes). Linux refuses to exec
/// with one environment string over 128 KiB, and a job that cannot start
/// would count against the command (after three, intake closes); a
/// producer's oversized attribute must not do that.
pub const MAX_ATTRIBUTE_VALUE: usize = 32 * 1024;

/// Message attributes (name, data type, string value) as job environment
/// suffixes and values: String and Number attributes only, names made
/// env-safe ([`sanitize_attr_name`]), at most [`MAX_ATTRIBUTES`] in name
/// order; a value no process environment can hold (a NUL byte, over
/// [`MAX_ATTRIBUTE_VALUE`]) is left out rather than failing the job's start. Sorted; of two names that
/// sanitize alike, the later in sort order wins (the job contract).
pub fn attr_env<'a>(
    attrs: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)>,
) -> Vec<(String, String)> {
    let mut kept: Vec<(&str, &str)> = attrs
        .filter(|(_, t, _)| t.starts_with("String") || t.starts_with("Number"))
        .filter_map(|(k, _, v)| Some((k, v?)))
        .filter(|(_, v)| v.len() <= MAX_ATTRIBUTE_VALUE && !v.contains('\0'))
        .collect();
    kept.sort_unstable();
    kept.truncate(MAX_ATTRIBUTES);
    let mut out: Vec<(String, String)> = kept
        .into_iter()
        .map(|(k, v)| (sanitize_attr_name(k), v.to_string()))
        .collect();
    out.sort();
    out
}

/// Attribute name → environment suffix: ASCII letters upper-cased, digits
/// kept, everything else `_`. (`order-id` → `ORDER_ID`.)
pub fn sanitize_attr_name(name: &str) -> String {
    name.chars()
        .take(256)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

pub(super) fn entry_failures(
    failed: &[aws_sdk_sqs::types::BatchResultErrorEntry],
) -> Vec<EntryFailure> {
    failed
        .iter()
        .map(|f| EntryFailure {
            index: f.id().parse().unwrap_or(usize::MAX),
            code: f.code().to_string(),
            message: f.message().unwrap_or_default().to_string(),
            sender_fault: f.sender_fault(),
        })
        .collect()
}

/// Plain values from an SDK message (taken, not copied). A message
/// without an id or receipt handle cannot be acted on; it is skipped (SQS
/// redelivers it after the lease).
pub(super) fn to_received(m: Message) -> Option<Received> {
    let (Some(id), Some(receipt)) = (m.message_id, m.receipt_handle) else {
        tracing::warn!("SQS returned a message without id or receipt handle; skipped, it will be redelivered after the lease");
        return None;
    };
    let receive_count = m
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let group = m
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned();
    let raw = m.message_attributes.unwrap_or_default();
    let interruptions = raw
        .get(INTERRUPTIONS_ATTRIBUTE)
        .and_then(|v| v.string_value())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some(Received {
        id,
        receipt: Receipt(receipt),
        body: bytes::Bytes::from(m.body.unwrap_or_default()),
        receive_count,
        interruptions,
        group,
        attributes: attributes_env(&raw),
        raw_attributes: raw
            .into_iter()
            .filter_map(|(name, v)| {
                let value = match (v.string_value, v.binary_value) {
                    (Some(t), _) => AttributeValue::Text(t),
                    (None, Some(b)) => AttributeValue::Binary(b.into_inner()),
                    (None, None) => return None,
                };
                Some(Attribute {
                    name,
                    data_type: v.data_type,
                    value,
                })
            })
            .collect(),
        received_at: tokio::time::Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Attributes come from producers: any names, types and values.
        #[test]
        fn attributes_become_env_a_process_can_hold(
            attrs in proptest::collection::vec(
                ("\\PC{0,300}", prop_oneof![Just("String".to_string()), Just("Number.int".to_string()), Just("Binary".to_string()), "\\PC{0,12}"], proptest::option::of("\\PC{0,64}|[\\x00a]{0,4}")),
                0..40,
            ),
            big in 0usize..3,
        ) {
            let mut attrs: Vec<(String, String, Option<String>)> = attrs;
            if big > 0 {
                attrs.push(("big".into(), "String".into(), Some("x".repeat(MAX_ATTRIBUTE_VALUE + big - 1))));
            }
            let env = attr_env(attrs.iter().map(|(n, t, v)| (n.as_str(), t.as_str(), v.as_deref())));
            prop_assert!(env.len() <= MAX_ATTRIBUTES);
            for (name, value) in &env {
                prop_assert!(name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'));
                prop_assert!(name.chars().count() <= 256);
                prop_assert!(!value.contains('\0') && value.len() <= MAX_ATTRIBUTE_VALUE);
            }
        }
    }

    #[test]
    fn values_no_process_can_hold_are_left_out() {
        let attrs = [
            ("ok", "String", Some("fine")),
            ("nul", "String", Some("a\0b")),
            ("bin", "Binary", None),
        ];
        assert_eq!(
            attr_env(attrs.into_iter()),
            vec![("OK".to_string(), "fine".to_string())]
        );
        let big = "x".repeat(MAX_ATTRIBUTE_VALUE + 1);
        assert!(attr_env([("big", "String", Some(big.as_str()))].into_iter()).is_empty());
    }

    #[test]
    fn attribute_names_become_env_safe() {
        assert_eq!(sanitize_attr_name("order-id"), "ORDER_ID");
        assert_eq!(sanitize_attr_name("Tenant.Name2"), "TENANT_NAME2");
        assert_eq!(sanitize_attr_name("ünï"), "_N_");
    }

    #[test]
    fn redrive_policies_parse_in_both_spellings() {
        let p = parse_redrive_policy(
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:jobs-dlq","maxReceiveCount":"3"}"#,
        )
        .unwrap();
        assert_eq!(p.max_receive_count, 3);
        let q = parse_redrive_policy(
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:x","maxReceiveCount":5}"#,
        )
        .unwrap();
        assert_eq!(q.max_receive_count, 5);
        assert_eq!(parse_redrive_policy("{}"), None);
        assert_eq!(parse_redrive_policy("garbage"), None);
    }

    #[test]
    fn queue_arns_name_account_and_queue() {
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:us-east-1:123456789012:jobs-dlq"),
            Some(("123456789012", "jobs-dlq"))
        );
        assert_eq!(parse_queue_arn("arn:aws:sns:us-east-1:1:t"), None);
        assert_eq!(parse_queue_arn("jobs-dlq"), None);
    }
}
