//! The group-size rules behind the status page's two buttons: spawn raises
//! the desired capacity by one, never above MaxSize; leave lowers it by
//! one, never below MinSize. (The automatic leave decision is `leave`.)

/// The desired capacity a spawn press asks for, or why none.
///
/// # Errors
/// The group is at its MaxSize.
pub fn spawn_one(group: &str, desired: u32, max: u32) -> Result<u32, String> {
    if desired >= max {
        return Err(format!(
            "group {group} is at its MaxSize ({max}); raise MaxSize to spawn more"
        ));
    }
    Ok(desired + 1)
}

/// Whether a leave press can be carried out.
///
/// # Errors
/// The group is at its MinSize: leaving with a decrement would be refused
/// (AWS: "min size constraint").
pub fn leave_requested(desired: u32, min: u32) -> Result<(), String> {
    if desired <= min {
        return Err(format!(
            "the group is at its MinSize ({min}): leaving would need a replacement; lower MinSize first"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_stops_at_max_and_leave_at_min() {
        assert_eq!(spawn_one("g", 2, 3), Ok(3));
        assert!(spawn_one("g", 3, 3).unwrap_err().contains("MaxSize (3)"));
        assert_eq!(leave_requested(2, 1), Ok(()));
        assert!(leave_requested(1, 1).unwrap_err().contains("MinSize (1)"));
    }
}
