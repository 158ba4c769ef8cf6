use super::*;

#[test]
fn job_ids_are_uuids_and_fall_back_to_the_message_id() {
    let id = JobId::new();
    assert_eq!(id.0.len(), 36);
    assert_ne!(id, JobId::new());
    let attrs = vec![("DRAINERD_JOB_ID".to_string(), id.0.clone())];
    assert_eq!(job_id_of("m-1", &attrs), id.0);
    assert_eq!(job_id_of("m-1", &[]), "m-1");
}

#[test]
fn attributes_are_checked_before_sending() {
    assert!(validate(&Job::new("x").attribute("tenant", "acme")).is_ok());
    assert!(validate(&Job::new("")).is_err());
    assert!(validate(&Job::new("x").attribute("drainerd-job-id", "1")).is_err());
    assert!(validate(&Job::new("x").attribute("AWS.trace", "1")).is_err());
    assert!(validate(&Job::new("x").attribute("a b", "1")).is_err());
    assert!(validate(&Job::new("x").attribute("k", "")).is_err());
    let many = (0..10).fold(Job::new("x"), |j, i| j.attribute(format!("a{i}"), "v"));
    assert!(validate(&many).is_err());
}
