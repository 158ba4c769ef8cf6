//! Auto Scaling for the agent: which group this instance is in, its size
//! and members, protection, leaving, the page's spawn, and the terminate
//! lifecycle hook (heartbeats while draining, CONTINUE when done).
//!
//! Calls only; the decisions are `decide/`'s and the fleet task's. Every
//! call is counted and a failure is returned to the caller, never retried
//! here forever.

use std::sync::Arc;

use aws_sdk_autoscaling::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::status::counters::Counters;

/// The group's figures the leave decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSize {
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub in_service: u32,
}

/// A group and its members, for the status page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    pub name: String,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub members: Vec<Member>,
}

/// One instance in a group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub instance_id: String,
    /// InService, Pending, Terminating, Terminating:Wait, Standby, ...
    pub lifecycle_state: String,
    pub health: String,
    pub protected: bool,
}

impl Group {
    pub fn size(&self) -> GroupSize {
        GroupSize {
            desired: self.desired,
            min: self.min,
            max: self.max,
            in_service: self
                .members
                .iter()
                .filter(|m| m.lifecycle_state == "InService")
                .count() as u32,
        }
    }
    /// Members on their way out (Terminating*, Detaching, EnteringStandby).
    pub fn leaving(&self) -> usize {
        self.members
            .iter()
            .filter(|m| {
                m.lifecycle_state.starts_with("Terminating")
                    || m.lifecycle_state.starts_with("Detaching")
                    || m.lifecycle_state == "EnteringStandby"
            })
            .count()
    }
}

/// This instance as a member of its group.
pub struct AutoScaling {
    client: aws_sdk_autoscaling::Client,
    pub instance_id: String,
    /// Set once the lookup has answered: `None` when the instance is in no
    /// Auto Scaling group.
    group: std::sync::OnceLock<Option<String>>,
    counters: Arc<Counters>,
}

#[derive(Debug, thiserror::Error)]
#[error("{api} for {instance_id}: {detail}")]
pub struct AutoScalingError {
    pub api: &'static str,
    pub instance_id: String,
    pub code: Option<String>,
    pub detail: String,
}

impl AutoScaling {
    /// The client for `instance_id`; makes no request (the group is looked
    /// up by [`AutoScaling::look_up_group`]).
    pub fn new(
        sdk: &aws_config::SdkConfig,
        instance_id: String,
        counters: Arc<Counters>,
    ) -> AutoScaling {
        AutoScaling {
            client: aws_sdk_autoscaling::Client::new(sdk),
            instance_id,
            group: std::sync::OnceLock::new(),
            counters,
        }
    }

    /// Finds this instance's group (DescribeAutoScalingInstances) and
    /// remembers it: `None` when the instance is in no group.
    ///
    /// # Errors
    /// The lookup failed (the instance may still be in a group).
    pub async fn look_up_group(&self) -> Result<Option<String>, AutoScalingError> {
        if let Some(g) = self.group.get() {
            return Ok(g.clone());
        }
        let r = self
            .client
            .describe_auto_scaling_instances()
            .instance_ids(&self.instance_id)
            .send()
            .await;
        let out = self.check("DescribeAutoScalingInstances", r)?;
        let group = out
            .auto_scaling_instances()
            .first()
            .and_then(|i| i.auto_scaling_group_name())
            .map(str::to_string);
        Ok(self.group.get_or_init(|| group).clone())
    }

    /// The group, once looked up (`None` before, or when in no group).
    pub fn group(&self) -> Option<&str> {
        self.group.get().and_then(|g| g.as_deref())
    }

    fn check<T, E>(
        &self,
        api: &'static str,
        r: Result<T, SdkError<E>>,
    ) -> Result<T, AutoScalingError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match r {
            Ok(v) => {
                self.counters.asg.add(api, true);
                Ok(v)
            }
            Err(e) => {
                self.counters.asg.add(api, false);
                Err(AutoScalingError {
                    api,
                    instance_id: self.instance_id.clone(),
                    code: e.code().map(str::to_string),
                    detail: DisplayErrorContext(&e).to_string(),
                })
            }
        }
    }

    fn group_name(&self) -> &str {
        self.group().unwrap_or_default()
    }

    /// RecordLifecycleActionHeartbeat: restarts the hook's timeout.
    ///
    /// # Errors
    /// The call failed.
    pub async fn lifecycle_heartbeat(&self, hook: &str) -> Result<(), AutoScalingError> {
        let r = self
            .client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(self.group_name())
            .lifecycle_hook_name(hook)
            .instance_id(&self.instance_id)
            .send()
            .await;
        self.check("RecordLifecycleActionHeartbeat", r).map(|_| ())
    }

    /// CompleteLifecycleAction with CONTINUE: the group may terminate us.
    ///
    /// # Errors
    /// The call failed.
    pub async fn complete_lifecycle(&self, hook: &str) -> Result<(), AutoScalingError> {
        let r = self
            .client
            .complete_lifecycle_action()
            .auto_scaling_group_name(self.group_name())
            .lifecycle_hook_name(hook)
            .instance_id(&self.instance_id)
            .lifecycle_action_result("CONTINUE")
            .send()
            .await;
        self.check("CompleteLifecycleAction", r).map(|_| ())
    }

    /// DescribeAutoScalingGroups for this instance's group.
    ///
    /// # Errors
    /// The call failed or the group is gone.
    pub async fn size(&self) -> Result<GroupSize, AutoScalingError> {
        self.describe().await.map(|g| g.size())
    }

    /// The group with its members (DescribeAutoScalingGroups).
    ///
    /// # Errors
    /// The call failed or the group is gone.
    pub async fn describe(&self) -> Result<Group, AutoScalingError> {
        let r = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(self.group_name())
            .send()
            .await;
        let out = self.check("DescribeAutoScalingGroups", r)?;
        let g = out
            .auto_scaling_groups()
            .first()
            .ok_or_else(|| AutoScalingError {
                api: "DescribeAutoScalingGroups",
                instance_id: self.instance_id.clone(),
                code: None,
                detail: format!("group {} not found", self.group_name()),
            })?;
        let n = |v: Option<i32>| u32::try_from(v.unwrap_or(0)).unwrap_or(0);
        Ok(Group {
            name: self.group_name().to_string(),
            desired: n(g.desired_capacity()),
            min: n(g.min_size()),
            max: n(g.max_size()),
            members: g
                .instances()
                .iter()
                .map(|i| Member {
                    instance_id: i.instance_id().unwrap_or_default().to_string(),
                    lifecycle_state: i
                        .lifecycle_state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    health: i.health_status().unwrap_or_default().to_string(),
                    protected: i.protected_from_scale_in().unwrap_or(false),
                })
                .collect(),
        })
    }

    /// Raises the group's desired capacity by one, never above MaxSize
    /// (the status page's spawn button). Returns the new desired capacity.
    ///
    /// Two presses at once on two instances may both read the same
    /// capacity and raise it by one together; the group never exceeds
    /// MaxSize either way.
    ///
    /// # Errors
    /// A call failed, or the group is at MaxSize (`code` "AtMaxSize").
    pub async fn spawn_one(&self) -> Result<u32, AutoScalingError> {
        let g = self.describe().await?;
        let want =
            crate::decide::capacity::spawn_one(&g.name, g.desired, g.max).map_err(|detail| {
                AutoScalingError {
                    api: "SetDesiredCapacity",
                    instance_id: self.instance_id.clone(),
                    code: Some("AtMaxSize".into()),
                    detail,
                }
            })?;
        let r = self
            .client
            .set_desired_capacity()
            .auto_scaling_group_name(self.group_name())
            .desired_capacity(i32::try_from(want).unwrap_or(i32::MAX))
            .honor_cooldown(false)
            .send()
            .await;
        self.check("SetDesiredCapacity", r).map(|_| want)
    }

    /// SetInstanceProtection for this instance.
    ///
    /// # Errors
    /// The call failed.
    pub async fn set_protection(&self, on: bool) -> Result<(), AutoScalingError> {
        let r = self
            .client
            .set_instance_protection()
            .auto_scaling_group_name(self.group_name())
            .instance_ids(&self.instance_id)
            .protected_from_scale_in(on)
            .send()
            .await;
        self.check("SetInstanceProtection", r).map(|_| ())
    }

    /// TerminateInstanceInAutoScalingGroup with decrement: leave the group
    /// and lower its desired capacity.
    ///
    /// # Errors
    /// The call failed; [`AutoScalingError::min_size`] tells the MinSize refusal.
    pub async fn terminate_with_decrement(&self) -> Result<(), AutoScalingError> {
        let r = self
            .client
            .terminate_instance_in_auto_scaling_group()
            .instance_id(&self.instance_id)
            .should_decrement_desired_capacity(true)
            .send()
            .await;
        self.check("TerminateInstanceInAutoScalingGroup", r)
            .map(|_| ())
    }
}

impl AutoScalingError {
    /// AWS refuses a decrement below MinSize with a ValidationError whose
    /// text contains "min size constraint".
    pub fn min_size(&self) -> bool {
        self.code.as_deref() == Some("ValidationError")
            && self.detail.contains("min size constraint")
    }
}
