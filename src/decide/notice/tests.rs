use super::*;
use proptest::prelude::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn rules(kill_grace: Duration, drain_timeout: Duration) -> NoticeRules {
    NoticeRules {
        spot_margin: S(15),
        spot_signal_jobs: SpotSignal::AtDeadline,
        rebalance: RebalanceAction::Log,
        kill_grace,
        drain_timeout,
    }
}

#[test]
fn spot_jobs_are_signalled_grace_before_the_deadline() {
    let md = rules(S(10), S(60)); // margin 15 s
    let now = SystemTime::UNIX_EPOCH + S(1000);
    let n = Event::Spot(SpotNotice {
        action: SpotAction::Terminate,
        time: now + S(120),
    });
    let Reaction::Drain { stop_jobs_in, .. } = reaction(&n, &md, now) else {
        panic!()
    };
    assert_eq!(stop_jobs_in, Some(S(95)));
    let md2 = NoticeRules {
        spot_signal_jobs: SpotSignal::Immediately,
        ..md
    };
    let Reaction::Drain { stop_jobs_in, .. } = reaction(&n, &md2, now) else {
        panic!()
    };
    assert_eq!(stop_jobs_in, Some(S(0)));
    let late = Event::Spot(SpotNotice {
        action: SpotAction::Stop,
        time: now + S(5),
    });
    let Reaction::Drain { stop_jobs_in, .. } = reaction(&late, &md, now) else {
        panic!()
    };
    assert_eq!(stop_jobs_in, Some(S(0)));
}

#[test]
fn rebalance_follows_configuration_and_does_not_drain_by_default() {
    let ev = Event::Rebalance(SystemTime::UNIX_EPOCH);
    let now = SystemTime::UNIX_EPOCH;
    assert_eq!(reaction(&ev, &rules(S(1), S(1)), now), Reaction::Report);
    let ignore = NoticeRules {
        rebalance: RebalanceAction::Ignore,
        ..rules(S(1), S(1))
    };
    assert_eq!(reaction(&ev, &ignore, now), Reaction::Ignore);
    let drain = NoticeRules {
        rebalance: RebalanceAction::Drain,
        ..rules(S(1), S(1))
    };
    assert!(matches!(
        reaction(&ev, &drain, now),
        Reaction::Drain {
            stop_jobs_in: None,
            ..
        }
    ));
}

#[test]
fn lifecycle_terminated_drains_like_shutdown() {
    let ev = Event::Lifecycle(Some("InService".into()), "Terminated".into());
    let r = reaction(&ev, &rules(S(1), S(60)), SystemTime::UNIX_EPOCH);
    assert!(
        matches!(r, Reaction::Drain { stop_jobs_in: Some(d), lifecycle: true, .. } if d == S(60))
    );
    let standby = Event::Lifecycle(None, "Standby".into());
    assert_eq!(
        reaction(&standby, &rules(S(1), S(60)), SystemTime::UNIX_EPOCH),
        Reaction::Report
    );
}

#[test]
fn every_drain_for_a_notice_ends_or_waits_for_the_instance_to_go() {
    use DrainCause::*;
    let m = |id: &str| Event::MaintenanceWithdrawn(id.into());
    assert_eq!(
        drain_ends_on(&Spot, &Event::SpotWithdrawn),
        DrainEnd::Resume
    );
    assert_eq!(
        drain_ends_on(&Rebalance, &Event::RebalanceWithdrawn),
        DrainEnd::Resume
    );
    assert_eq!(
        drain_ends_on(&Maintenance("e-1".into()), &m("e-1")),
        DrainEnd::Resume
    );
    assert_eq!(
        drain_ends_on(&Maintenance("e-1".into()), &m("e-2")),
        DrainEnd::Stay
    );
    assert_eq!(
        drain_ends_on(&Terminating, &Event::SpotWithdrawn),
        DrainEnd::Stay
    );
    assert_eq!(
        drain_ends_on(&Spot, &Event::RebalanceWithdrawn),
        DrainEnd::Stay
    );
    assert_eq!(when_drained(&Rebalance), DrainEnd::Leave);
    assert_eq!(when_drained(&Spot), DrainEnd::Stay);
    assert_eq!(when_drained(&Terminating), DrainEnd::Stay);
}

#[test]
fn maintenance_is_due_within_its_lead() {
    let now = SystemTime::UNIX_EPOCH + S(10_000);
    let mut m = Maintenance {
        id: "e".into(),
        code: "system-reboot".into(),
        description: String::new(),
        not_before: Some(now + S(600)),
        state: "active".into(),
    };
    assert!(maintenance_due(&m, S(600), now));
    assert!(!maintenance_due(&m, S(599), now));
    m.not_before = Some(now - S(5));
    assert!(maintenance_due(&m, S(0), now), "already past NotBefore");
    m.not_before = None;
    assert!(!maintenance_due(&m, Duration::MAX, now));
}

proptest! {
    #[test]
    fn spot_jobs_are_stopped_before_the_deadline(in_secs in 0u64..600, margin in 0u64..120, grace in 0u64..60) {
        let md = NoticeRules { spot_margin: S(margin), ..rules(S(grace), S(60)) };
        let now = SystemTime::UNIX_EPOCH + S(10_000);
        let ev = Event::Spot(SpotNotice { action: SpotAction::Terminate, time: now + S(in_secs) });
        let Reaction::Drain { stop_jobs_in: Some(stop), .. } = reaction(&ev, &md, now) else { panic!() };
        // SIGKILL (stop + grace) never lands after the deadline, unless the deadline has already passed.
        let deadline = in_secs.saturating_sub(margin);
        prop_assert!(stop + S(grace) <= S(deadline).max(S(grace)));
    }

    #[test]
    fn spot_jobs_are_killed_by_the_deadline_whatever_the_grace(in_secs in 0u64..600, margin in 0u64..120, grace in 0u64..600) {
        let md = NoticeRules { spot_margin: S(margin), ..rules(S(grace), S(60)) };
        let now = SystemTime::UNIX_EPOCH + S(10_000);
        let ev = Event::Spot(SpotNotice { action: SpotAction::Stop, time: now + S(in_secs) });
        let Reaction::Drain { stop_jobs_in: Some(term), kill_in: Some(kill), .. } = reaction(&ev, &md, now) else { panic!() };
        let deadline = S(in_secs.saturating_sub(margin));
        prop_assert!(kill <= deadline, "SIGKILL {kill:?} after the deadline {deadline:?}");
        prop_assert!(term <= kill);
        // SIGTERM as early as the grace asks, but not before now.
        prop_assert_eq!(term, kill.saturating_sub(S(grace)));
    }

    #[test]
    fn kill_schedule_never_passes_the_deadline(now in 0u64..1_000_000, deadline in 0u64..1_000_000, grace in 0u64..100_000) {
        let t = |s| SystemTime::UNIX_EPOCH + S(s);
        let (term, kill) = kill_schedule(t(now), t(deadline), S(grace));
        prop_assert!(term <= kill);
        prop_assert!(t(now) + kill <= t(deadline).max(t(now)));
    }

    #[test]
    fn maintenance_due_never_panics(nb in proptest::option::of(0u64..u64::MAX / 4), lead in 0u64..u64::MAX, now in 0u64..u64::MAX / 4) {
        let m = Maintenance { id: String::new(), code: String::new(), description: String::new(),
            not_before: nb.map(|s| SystemTime::UNIX_EPOCH + S(s)), state: String::new() };
        let _ = maintenance_due(&m, S(lead), SystemTime::UNIX_EPOCH + S(now));
    }
}
