use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;

fn t(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap()
}

#[test]
fn parses_the_documented_bodies() {
    let n = parse_spot(r#"{"action": "terminate", "time": "2017-09-18T08:22:00Z"}"#).unwrap();
    assert_eq!(
        n,
        SpotNotice {
            action: SpotAction::Terminate,
            time: t("2017-09-18T08:22:00Z")
        }
    );
    assert_eq!(
        parse_spot(r#"{"action":"hibernate","time":"2017-09-18T08:22:00Z"}"#)
            .unwrap()
            .action,
        SpotAction::Hibernate
    );
    assert!(parse_spot(r#"{"action":"explode","time":"2017-09-18T08:22:00Z"}"#).is_err());
    assert!(parse_spot("2015-01-05T18:02:00Z").is_err());
    assert_eq!(
        parse_rebalance(r#"{"noticeTime": "2020-10-27T08:22:00Z"}"#).unwrap(),
        t("2020-10-27T08:22:00Z")
    );
    assert_eq!(parse_lifecycle("Terminated\n").unwrap(), "Terminated");
    assert!(parse_lifecycle("Exploding").is_err());
    let m = parse_maintenance(
        r#"[{"NotBefore":"21 Jan 2019 09:00:43 GMT","Code":"system-reboot","Description":"scheduled reboot","EventId":"instance-event-0d59937288b749b32","NotAfter":"21 Jan 2019 09:17:23 GMT","State":"active"}]"#,
    )
    .unwrap();
    assert_eq!(m[0].id, "instance-event-0d59937288b749b32");
    assert_eq!(m[0].not_before, Some(t("2019-01-21T09:00:43Z")));
    assert_eq!(parse_maintenance("[]").unwrap(), vec![]);
}

#[test]
fn aws_dates() {
    assert_eq!(
        parse_aws_date("1 Feb 2024 00:00:00 GMT"),
        Some(t("2024-02-01T00:00:00Z"))
    );
    assert_eq!(parse_aws_date("31 Feb 2024 00:00:00 GMT"), None);
    assert_eq!(parse_aws_date("21 Jan 2019 09:00:43 UTC"), None);
    assert_eq!(parse_aws_date(""), None);
}

#[test]
fn each_notice_is_an_event_once_and_withdrawal_is_reported() {
    let mut tr = Notices::default();
    let n = SpotNotice {
        action: SpotAction::Terminate,
        time: UNIX_EPOCH + Duration::from_secs(100),
    };
    assert_eq!(tr.observe_spot(Seen::Present(n)), vec![Event::Spot(n)]);
    assert_eq!(tr.observe_spot(Seen::Present(n)), vec![]);
    assert_eq!(
        tr.observe_spot(Seen::Unknown),
        vec![],
        "no answer is not a withdrawal"
    );
    assert_eq!(tr.observe_spot(Seen::Malformed("x".into())), vec![]);
    assert_eq!(tr.observe_spot(Seen::Present(n)), vec![]);
    assert_eq!(tr.observe_spot(Seen::Absent), vec![Event::SpotWithdrawn]);
    assert_eq!(tr.observe_spot(Seen::Absent), vec![]);

    assert_eq!(
        tr.observe_lifecycle(Seen::Present("InService".into())),
        vec![Event::Lifecycle(None, "InService".into())]
    );
    assert_eq!(
        tr.observe_lifecycle(Seen::Present("InService".into())),
        vec![]
    );
    assert_eq!(
        tr.observe_lifecycle(Seen::Present("Terminated".into())),
        vec![Event::Lifecycle(
            Some("InService".into()),
            "Terminated".into()
        )]
    );

    let m = Maintenance {
        id: "e1".into(),
        code: "system-reboot".into(),
        description: String::new(),
        not_before: None,
        state: "active".into(),
    };
    assert_eq!(
        tr.observe_maintenance(Seen::Present(vec![m.clone()])),
        vec![Event::Maintenance(m.clone())]
    );
    assert_eq!(
        tr.observe_maintenance(Seen::Present(vec![m.clone()])),
        vec![]
    );
    assert_eq!(tr.observe_maintenance(Seen::Unknown), vec![]);
    assert_eq!(
        tr.observe_maintenance(Seen::Present(vec![])),
        vec![Event::MaintenanceWithdrawn("e1".into())]
    );
}

#[test]
fn hostile_documents_are_bounded_and_one_line() {
    let many: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"EventId":"e{i}","Code":"{}\nREADY=1"}}"#,
                "x".repeat(500)
            )
        })
        .collect();
    let body = format!("[{}]", many.join(","));
    match parse_maintenance(&body) {
        Ok(list) => {
            assert!(list.len() <= MAX_EVENTS);
            for m in &list {
                assert!(m.code.chars().count() <= MAX_TEXT && !m.code.contains('\n'));
            }
        }
        Err(e) => assert!(e.contains("over"), "{e}"),
    }
    let small: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"EventId":"e{i}","Code":"c\nREADY=1","Description":"{}"}}"#,
                "d".repeat(300)
            )
        })
        .collect();
    let list = parse_maintenance(&format!("[{}]", small.join(","))).unwrap();
    assert_eq!(list.len(), MAX_EVENTS);
    assert_eq!(list[0].code, "c READY=1");
    assert_eq!(list[0].description.chars().count(), MAX_TEXT);
    assert!(parse_spot(&" ".repeat(MAX_BODY + 1))
        .unwrap_err()
        .contains("over"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    // Metadata documents are untrusted (a proxy, a compromised route):
    // whatever the bytes, no panic, and what is kept is bounded.
    #[test]
    fn large_garbage_is_refused_or_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..(MAX_BODY + 512))) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = parse_spot(&s);
        let _ = parse_rebalance(&s);
        let _ = parse_lifecycle(&s);
        if let Ok(list) = parse_maintenance(&s) {
            prop_assert!(list.len() <= MAX_EVENTS);
        }
        let _ = crate::metadata::identity::parse(&s);
    }

    #[test]
    fn maintenance_text_is_always_plain(code in "\\PC{0,300}|[\\x00-\\x1f]{0,20}", id in "\\PC{0,50}") {
        let body = serde_json::json!([{"EventId": id, "Code": code, "State": code, "Description": code}]).to_string();
        for m in parse_maintenance(&body).unwrap() {
            for text in [&m.id, &m.code, &m.state, &m.description] {
                prop_assert!(!text.chars().any(char::is_control));
                prop_assert!(text.chars().count() <= MAX_TEXT);
            }
        }
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = parse_spot(&s);
        let _ = parse_rebalance(&s);
        let _ = parse_lifecycle(&s);
        let _ = parse_maintenance(&s);
        let _ = parse_aws_date(&s);
    }

    #[test]
    fn json_shaped_garbage_never_panics(action in ".{0,12}", time in ".{0,40}", date in ".{0,40}") {
        let _ = parse_spot(&serde_json::json!({"action": action, "time": time}).to_string());
        let _ = parse_rebalance(&serde_json::json!({"noticeTime": time}).to_string());
        let _ = parse_maintenance(&serde_json::json!([{"EventId": action, "NotBefore": date}]).to_string());
        let _ = parse_aws_date(&date);
    }
}
