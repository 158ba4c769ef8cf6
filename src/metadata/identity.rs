//! Who this instance is: the identity document, parsed.

use std::time::SystemTime;

/// Who this instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    pub instance_type: String,
    /// `pendingTime`: launch (or last start) time; decides billing hours.
    pub launch_time: Option<SystemTime>,
}

/// Parses the identity document.
///
/// # Errors
/// A description of what is missing or malformed.
pub fn parse(body: &str) -> Result<Identity, String> {
    if body.len() > super::notice::MAX_BODY {
        return Err(format!("a document of {} bytes", body.len()));
    }
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(super::notice::plain);
    Ok(Identity {
        instance_id: field("instanceId").ok_or("no instanceId")?,
        region: field("region").ok_or("no region")?,
        availability_zone: field("availabilityZone").unwrap_or_default(),
        instance_type: field("instanceType").unwrap_or_default(),
        launch_time: field("pendingTime").and_then(|t| humantime::parse_rfc3339_weak(&t).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identity_document() {
        let id = parse(
            r#"{"instanceId":"i-1","region":"eu-west-1","availabilityZone":"eu-west-1a","instanceType":"c5.large","pendingTime":"2026-11-22T16:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(id.instance_id, "i-1");
        assert_eq!(
            id.launch_time,
            Some(humantime::parse_rfc3339("2026-11-22T16:00:00Z").unwrap())
        );
        assert!(parse("{}").is_err());
    }

    proptest! {
        #[test]
        fn identity_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
