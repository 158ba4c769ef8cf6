//! Jobs as another user (`job.user`, `job.group`): resolving the names, and
//! preparing the agent at start so that no job inherits its rights.
//!
//! The agent (user `drainerd`) switches each job to the job user with
//! std's `Command::uid/gid` (no `pre_exec`, no unsafe code here). That
//! needs CAP_SETUID and CAP_SETGID, and stopping the job's process group
//! afterwards needs CAP_KILL; the unit drop-in
//! `systemd/job-user.conf` grants those three, as ambient capabilities.
//! Ambient capabilities pass to every child on exec, and std only drops
//! supplementary groups when the parent is root, so before any job starts
//! [`prepare`] clears the agent's ambient and inheritable sets (the jobs
//! then start with none) and its supplementary groups (the jobs would
//! otherwise keep group `drainerd`, which may read the configuration and
//! its control token). It must run before any other thread exists:
//! capabilities are per thread.
//!
//! It never decides who runs jobs: the configuration does.

use std::path::PathBuf;

use caps::{CapSet, Capability};
use nix::unistd::{Gid, Group, Uid, User};

use crate::config::JobConfig;

/// Who the jobs run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// The user's name (the job's `USER` and `LOGNAME`).
    pub user: String,
    /// The user's home (the job's `HOME`).
    pub home: PathBuf,
}

/// The capabilities switching users needs (see the module docs).
const NEEDED: [Capability; 3] = [
    Capability::CAP_SETUID,
    Capability::CAP_SETGID,
    Capability::CAP_KILL,
];

/// `job.user` / `job.group` resolved from the system's user database;
/// `None` when jobs run as the agent's own user.
///
/// # Errors
/// A name that does not resolve, root, or a group without a user.
pub fn resolve(job: &JobConfig) -> Result<Option<RunAs>, String> {
    let Some(name) = job.user.as_deref() else {
        return match &job.group {
            Some(_) => Err("job.group is set without job.user".into()),
            None => Ok(None),
        };
    };
    let user = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    }
    .map_err(|e| format!("is {name:?}, which cannot be looked up: {e}"))?
    .ok_or_else(|| format!("is {name:?}, but there is no such user"))?;
    let gid = match job.group.as_deref() {
        None => user.gid,
        Some(g) => {
            match g.parse::<u32>() {
                Ok(gid) => Group::from_gid(Gid::from_raw(gid)),
                Err(_) => Group::from_name(g),
            }
            .map_err(|e| format!("job.group {g:?} cannot be looked up: {e}"))?
            .ok_or_else(|| format!("job.group is {g:?}, but there is no such group"))?
            .gid
        }
    };
    if user.uid.is_root() || gid.as_raw() == 0 {
        return Err(format!(
            "is {name:?}, which is root (or group 0): jobs would have more rights than drainerd"
        ));
    }
    Ok(Some(RunAs {
        uid: user.uid.as_raw(),
        gid: gid.as_raw(),
        user: user.name,
        home: user.dir,
    }))
}

/// Prepares the agent to start jobs as `run_as`: checks the capabilities
/// it needs, and clears what jobs must not inherit (ambient and
/// inheritable capabilities, supplementary groups). Call it once, from
/// `main`, before the runtime starts any thread.
///
/// # Errors
/// A missing capability or a failed system call, said for exit 78.
pub fn prepare(run_as: &RunAs) -> Result<(), String> {
    let me = nix::unistd::geteuid();
    if me.as_raw() == run_as.uid && nix::unistd::getegid().as_raw() == run_as.gid {
        return Ok(());
    }
    if !me.is_root() {
        let effective = caps::read(None, CapSet::Effective).map_err(|e| e.to_string())?;
        let missing: Vec<String> = NEEDED
            .iter()
            .filter(|c| !effective.contains(c))
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "job.user = {:?} needs {}, which drainerd does not have; install the unit drop-in that grants them (/usr/share/drainerd/job-user.conf, see README \"Running jobs as another user\"), or remove job.user",
                run_as.user,
                missing.join(", ")
            ));
        }
        // std clears a child's supplementary groups only when the parent
        // is root: clear the agent's own, so jobs have none.
        nix::unistd::setgroups(&[])
            .map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
    }
    for set in [CapSet::Ambient, CapSet::Inheritable] {
        caps::clear(None, set).map_err(|e| format!("cannot clear {set:?} capabilities: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(user: Option<&str>, group: Option<&str>) -> JobConfig {
        let mut j: JobConfig = toml::from_str("command = [\"/bin/true\"]").unwrap();
        j.user = user.map(str::to_string);
        j.group = group.map(str::to_string);
        j
    }

    #[test]
    fn names_and_ids_resolve() {
        assert_eq!(resolve(&job(None, None)), Ok(None));
        let nobody = resolve(&job(Some("nobody"), None)).unwrap().unwrap();
        assert_eq!(nobody.user, "nobody");
        let by_id = resolve(&job(Some(&nobody.uid.to_string()), None))
            .unwrap()
            .unwrap();
        assert_eq!(by_id, nobody);
        let daemon_group = resolve(&job(Some("nobody"), Some("daemon")))
            .unwrap()
            .unwrap();
        assert_ne!(daemon_group.gid, nobody.gid);
    }

    #[test]
    fn unknown_names_root_and_a_lone_group_are_refused() {
        assert!(resolve(&job(Some("no-such-user-here"), None))
            .unwrap_err()
            .contains("no such user"));
        assert!(resolve(&job(Some("root"), None))
            .unwrap_err()
            .contains("root"));
        assert!(resolve(&job(Some("0"), None)).is_err());
        assert!(resolve(&job(Some("nobody"), Some("root"))).is_err());
        assert!(resolve(&job(None, Some("nogroup"))).is_err());
    }
}
