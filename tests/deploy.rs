//! The fleet template (`deploy/cloudformation/drainerd-fleet.yaml`): what
//! it wires together, and a stack made from it that drains its queue.
//!
//! moto's CloudFormation creates the queues, the role and profile, the
//! launch template (rendering its user-data) and the group, but not the
//! lifecycle hook, the scaling policy or the alarms, nor the group's
//! metrics collection (test-world.md): those are checked in the parsed
//! template. drainerd has no CloudFormation or EC2 client, so boto3 from
//! `.venv` deploys the stack and parses the YAML.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use support::*;

const TEMPLATE: &str = "deploy/cloudformation/drainerd-fleet.yaml";

/// Runs `script` with the venv's python; returns its stdout as JSON.
fn python(script: &str, args: &[&str]) -> Value {
    let out = Command::new(Path::new(ROOT).join(".venv/bin/python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run the venv's python (scripts/ensure-venv installs it)");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A YAML loader that turns CloudFormation's short forms (`!Ref X`,
/// `!GetAtt A.B`, `!Sub ...`) into their long forms (`{"Ref": "X"}`, ...).
const CFN_YAML: &str = r#"
import yaml
class Cfn(yaml.SafeLoader):
    pass
def intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == 'GetAtt':
            value = value.split('.', 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix if suffix in ('Ref', 'Condition') else 'Fn::' + suffix: value}
Cfn.add_multi_constructor('!', intrinsic)
"#;

/// The template as JSON, intrinsic functions in long form.
fn template() -> Value {
    let script = format!(
        "{CFN_YAML}\nimport json, sys\nprint(json.dumps(yaml.load(open(sys.argv[1]), Loader=Cfn), default=str))\n"
    );
    python(&script, &[Path::new(ROOT).join(TEMPLATE).to_str().unwrap()])
}

/// Creates the stack in moto (subnets: two of moto's default VPC), waits
/// for it to settle, and reads back its status, outputs, subnets and the
/// user-data its launch template carries, as cloud-config parsed to JSON.
const DEPLOY: &str = r#"
import base64, json, sys, time, boto3, yaml
endpoint, template, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
kw = dict(endpoint_url=endpoint, region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')
ec2 = boto3.client('ec2', **kw)
vpc = ec2.describe_vpcs(Filters=[{'Name': 'isDefault', 'Values': ['true']}])['Vpcs'][0]['VpcId']
subnets = sorted(s['SubnetId'] for s in ec2.describe_subnets(Filters=[{'Name': 'vpc-id', 'Values': [vpc]}])['Subnets'])
params['Subnets'] = ','.join(subnets[:2])
cfn = boto3.client('cloudformation', **kw)
with open(template) as f:
    body = f.read()
cfn.create_stack(StackName='drainerd-fleet', TemplateBody=body, Capabilities=['CAPABILITY_IAM'],
                 Parameters=[{'ParameterKey': k, 'ParameterValue': v} for k, v in params.items()])
deadline = time.monotonic() + 120
while True:
    stack = cfn.describe_stacks(StackName='drainerd-fleet')['Stacks'][0]
    if not stack['StackStatus'].endswith('_IN_PROGRESS') or time.monotonic() > deadline:
        break
    time.sleep(0.2)
outputs = {o['OutputKey']: o['OutputValue'] for o in stack.get('Outputs', [])}
cloud_config = None
if 'LaunchTemplateId' in outputs:
    version = ec2.describe_launch_template_versions(LaunchTemplateId=outputs['LaunchTemplateId'], Versions=['$Latest'])
    user_data = base64.b64decode(version['LaunchTemplateVersions'][0]['LaunchTemplateData']['UserData']).decode()
    assert user_data.startswith('#cloud-config\n'), user_data
    cloud_config = yaml.safe_load(user_data)
print(json.dumps({'status': stack['StackStatus'], 'reason': stack.get('StackStatusReason'),
                  'outputs': outputs, 'subnets': params['Subnets'], 'cloud_config': cloud_config}))
"#;

fn deploy(endpoint: &str, params: &[(&str, &str)]) -> Value {
    let params: BTreeMap<&str, &str> = params.iter().copied().collect();
    python(
        DEPLOY,
        &[
            endpoint,
            Path::new(ROOT).join(TEMPLATE).to_str().unwrap(),
            &serde_json::to_string(&params).unwrap(),
        ],
    )
}

/// Logical ids of the template's resources of type `ty`.
fn resources<'a>(t: &'a Value, ty: &str) -> Vec<(&'a str, &'a Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .map(|(id, r)| (id.as_str(), &r["Properties"]))
        .collect()
}

fn one<'a>(t: &'a Value, ty: &str) -> (&'a str, &'a Value) {
    let all = resources(t, ty);
    assert_eq!(all.len(), 1, "one {ty} in the template");
    all[0]
}

/// (work queue, dead-letter queue): the queue with a redrive policy, and
/// the queue that policy names.
fn queues(t: &Value) -> (&str, &str) {
    let all = resources(t, "AWS::SQS::Queue");
    assert_eq!(all.len(), 2, "a work queue and its DLQ");
    let (work, props) = all
        .iter()
        .find(|(_, p)| p.get("RedrivePolicy").is_some())
        .expect("a queue with a redrive policy");
    let target = &props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"];
    let dlq = all
        .iter()
        .map(|(id, _)| *id)
        .find(|id| target == &json!([id, "Arn"]))
        .expect("the redrive policy names the other queue");
    (work, dlq)
}

fn string_set(v: &Value) -> BTreeSet<String> {
    match v {
        Value::String(s) => [s.clone()].into(),
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        other => panic!("not a string or list: {other}"),
    }
}

/// The template's policy statements by Sid, each with the condition that
/// gates it (`Fn::If [cond, statement, AWS::NoValue]`), if any.
fn template_statements(t: &Value) -> BTreeMap<String, (Value, Option<String>)> {
    let (_, role) = one(t, "AWS::IAM::Role");
    let policies = role["Policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1, "one inline policy");
    policies[0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| match s.get("Fn::If") {
            Some(branches) => {
                assert_eq!(branches[2], json!({"Ref": "AWS::NoValue"}), "{s}");
                (branches[1].clone(), branches[0].as_str().map(String::from))
            }
            None => (s.clone(), None),
        })
        .map(|(s, gate)| (s["Sid"].as_str().unwrap().to_string(), (s, gate)))
        .collect()
}

#[test]
fn the_role_grants_exactly_drainerds_policy_on_this_stacks_queues() {
    let t = template();
    let (work, dlq) = queues(&t);
    let packaged: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("packaging/iam-policy.json")).unwrap(),
    )
    .unwrap();
    let packaged: BTreeMap<String, &Value> = packaged["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["Sid"].as_str().unwrap().to_string(), s))
        .collect();
    let ours = template_statements(&t);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        packaged.keys().collect::<Vec<_>>(),
        "the template's statements vs packaging/iam-policy.json"
    );
    for (sid, (stmt, gate)) in &ours {
        let theirs = packaged[sid];
        assert_eq!(stmt["Effect"], "Allow", "{sid}");
        assert_eq!(
            string_set(&stmt["Action"]),
            string_set(&theirs["Action"]),
            "{sid}: actions"
        );
        assert_eq!(stmt.get("Condition"), theirs.get("Condition"), "{sid}");
        if theirs["Resource"] == "*" {
            assert_eq!(stmt["Resource"], "*", "{sid}");
        }
        // Only the optional DynamoDB statement depends on a parameter.
        assert_eq!(gate.is_some(), sid == "TrackJobStatesOptional", "{sid}");
    }
    assert_eq!(
        ours["DrainTheQueue"].0["Resource"],
        json!({"Fn::GetAtt": [work, "Arn"]})
    );
    assert_eq!(
        ours["StatusPageDeadLetterDepth"].0["Resource"],
        json!({"Fn::GetAtt": [dlq, "Arn"]})
    );
    let (lt_id, lt) = one(&t, "AWS::EC2::LaunchTemplate");
    let (instance_profile, _) = one(&t, "AWS::IAM::InstanceProfile");
    assert_eq!(
        lt["LaunchTemplateData"]["IamInstanceProfile"]["Arn"],
        json!({"Fn::GetAtt": [instance_profile, "Arn"]}),
        "{lt_id} launches with the role"
    );
}

#[test]
fn the_group_has_the_terminate_hook_the_user_data_names() {
    let t = template();
    let (_, group) = one(&t, "AWS::AutoScaling::AutoScalingGroup");
    let hooks = group["LifecycleHookSpecificationList"].as_array().unwrap();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(
        hooks[0]["LifecycleTransition"],
        "autoscaling:EC2_INSTANCE_TERMINATING"
    );
    assert_eq!(
        hooks[0]["LifecycleHookName"],
        json!({"Ref": "LifecycleHookName"})
    );
    assert!(hooks[0]["HeartbeatTimeout"].get("Ref").is_some());
    // The user-data's drainerd.toml takes the same parameter (the deploy
    // test below checks the rendered value).
    let (_, lt) = one(&t, "AWS::EC2::LaunchTemplate");
    let sub = &lt["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"];
    let text = sub
        .as_str()
        .or_else(|| sub[0].as_str())
        .expect("user-data is Fn::Base64 of Fn::Sub");
    assert!(
        text.contains("lifecycle_hook = \"${LifecycleHookName}\""),
        "{text}"
    );
    assert_eq!(group["NewInstancesProtectedFromScaleIn"], false);
    let tags = group["Tags"].as_array().unwrap();
    assert!(
        tags.contains(&json!({"Key": "drainerd", "Value": "managed", "PropagateAtLaunch": true})),
        "{tags:?}"
    );
}

#[test]
fn scale_out_tracks_visible_messages_per_in_service_instance_and_never_scales_in() {
    let t = template();
    let (work, _) = queues(&t);
    let (group_id, group) = one(&t, "AWS::AutoScaling::AutoScalingGroup");
    let (_, policy) = one(&t, "AWS::AutoScaling::ScalingPolicy");
    assert_eq!(policy["AutoScalingGroupName"], json!({"Ref": group_id}));
    assert_eq!(policy["PolicyType"], "TargetTrackingScaling");
    let tracking = &policy["TargetTrackingConfiguration"];
    assert_eq!(
        tracking["DisableScaleIn"], true,
        "drainerd leaves by itself"
    );
    let metrics = tracking["CustomizedMetricSpecification"]["Metrics"]
        .as_array()
        .unwrap();
    let by_id: BTreeMap<&str, &Value> = metrics
        .iter()
        .map(|m| (m["Id"].as_str().unwrap(), m))
        .collect();
    let returned: Vec<&&Value> = by_id.values().filter(|m| m["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1, "one time series: {metrics:?}");
    let expr = returned[0]["Expression"].as_str().unwrap();
    let (num, den) = expr.split_once('/').expect("a division");
    let stat = |id: &str| &by_id[id.trim()]["MetricStat"]["Metric"];
    assert_eq!(stat(num)["Namespace"], "AWS/SQS", "{expr}");
    assert_eq!(
        stat(num)["MetricName"],
        "ApproximateNumberOfMessagesVisible"
    );
    assert_eq!(
        stat(num)["Dimensions"],
        json!([{"Name": "QueueName", "Value": {"Fn::GetAtt": [work, "QueueName"]}}])
    );
    assert_eq!(stat(den)["Namespace"], "AWS/AutoScaling", "{expr}");
    assert_eq!(stat(den)["MetricName"], "GroupInServiceInstances");
    assert_eq!(
        stat(den)["Dimensions"],
        json!([{"Name": "AutoScalingGroupName", "Value": {"Ref": group_id}}])
    );
    // GroupInServiceInstances exists only with group metrics collection.
    let collected: Vec<&Value> = group["MetricsCollection"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["Metrics"].as_array().unwrap())
        .collect();
    assert!(
        collected.contains(&&json!("GroupInServiceInstances")),
        "{collected:?}"
    );
    // Spot comes with capacity rebalancing (the hook drains the old one).
    assert_eq!(
        group["CapacityRebalance"],
        json!({"Fn::If": ["Spot", true, false]})
    );
}

#[test]
fn alarms_watch_dead_letters_and_the_oldest_message() {
    let t = template();
    let (work, dlq) = queues(&t);
    let alarms = resources(&t, "AWS::CloudWatch::Alarm");
    let on = |queue: &str, metric: &str| {
        alarms
            .iter()
            .find(|(_, a)| {
                a["Namespace"] == "AWS/SQS"
                    && a["MetricName"] == metric
                    && a["Dimensions"]
                        == json!([{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}])
            })
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no alarm on {metric} of {queue}"))
    };
    let dead = on(dlq, "ApproximateNumberOfMessagesVisible");
    assert_eq!(dead["Threshold"], 0);
    assert_eq!(dead["ComparisonOperator"], "GreaterThanThreshold");
    let old = on(work, "ApproximateAgeOfOldestMessage");
    assert_eq!(
        old["Threshold"],
        json!({"Ref": "OldestMessageAlarmSeconds"})
    );
    assert_eq!(old["ComparisonOperator"], "GreaterThanThreshold");
    for (id, a) in &alarms {
        assert_eq!(
            a["AlarmActions"],
            json!({"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}),
            "{id}"
        );
    }
}

#[test]
fn every_parameter_says_what_it_is_for() {
    let t = template();
    for (name, p) in t["Parameters"].as_object().unwrap() {
        let d = p["Description"].as_str().unwrap_or_default();
        assert!(d.len() > 20, "parameter {name} needs a Description");
    }
}

/// The drainerd.toml a deployed stack's user-data writes.
fn rendered_config(stack: &Value) -> &str {
    let cc = &stack["cloud_config"];
    assert!(
        cc["runcmd"].as_array().unwrap().contains(&json!([
            "systemctl",
            "enable",
            "--now",
            "drainerd.service"
        ])),
        "the user-data starts the unit: {cc}"
    );
    let file = cc["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/drainerd/drainerd.toml")
        .expect("user-data writes /etc/drainerd/drainerd.toml");
    file["content"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_optional_parts_deploy_and_render_a_valid_configuration() {
    // Spot with a second instance type, job-state tracking, an alarm topic.
    // (moto accepts MixedInstancesPolicy here but does not apply it.)
    let moto = Moto::start();
    let stack = deploy(
        &moto.endpoint,
        &[
            ("ImageId", "ami-12c6146b"),
            (
                "JobCommand",
                r#"["/usr/local/bin/build-report", "--format", "pdf"]"#,
            ),
            ("UseSpot", "true"),
            ("InstanceType2", "t3a.small"),
            ("TrackingTable", "drainerd-jobs"),
            (
                "AlarmTopicArn",
                "arn:aws:sns:us-east-1:123456789012:drainerd-alarms",
            ),
        ],
    );
    assert_eq!(stack["status"], "CREATE_COMPLETE", "{stack}");
    let wd = Workdir::new();
    let text = rendered_config(&stack);
    let cfg = wd.write("drainerd.toml", text);
    let (code, err) = run_to_exit(&["check-config", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "drainerd check-config: {err}\n{text}");
    let conf: toml::Value = toml::from_str(text).unwrap();
    assert_eq!(conf["tracking"]["enabled"].as_bool(), Some(true), "{text}");
    assert_eq!(conf["tracking"]["table"].as_str(), Some("drainerd-jobs"));
    assert_eq!(
        conf["job"]["command"],
        toml::Value::try_from(["/usr/local/bin/build-report", "--format", "pdf"]).unwrap()
    );
    // Defaults: MinSize 1, no desired given (the group starts at MinSize).
    let asg = asg_client(&moto.endpoint);
    let described = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(stack["outputs"]["GroupName"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let g = &described.auto_scaling_groups()[0];
    assert_eq!((g.min_size(), g.desired_capacity()), (Some(1), Some(1)));
}

async fn desired(asg: &aws_sdk_autoscaling::Client, group: &str) -> i32 {
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()[0].desired_capacity().unwrap()
}

async fn queue_attr(sqs: &aws_sdk_sqs::Client, url: &str, name: QueueAttributeName) -> String {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .unwrap();
    out.attributes().unwrap()[&name].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_from_the_template_drains_its_queue_then_its_idle_worker_leaves() {
    let moto = Moto::start();
    let wd = Workdir::new();
    let ran = wd.path("ran");
    let job = wd.script(
        "job.sh",
        &format!("printf '%s\\n' \"$(cat)\" >> '{}'", ran.display()),
    );
    let command = serde_json::to_string(&[job.to_str().unwrap()]).unwrap();
    // MinSize below desired: drainerd never leaves at MinSize, and moto
    // does not enforce MinSize itself (test-world.md).
    let stack = deploy(
        &moto.endpoint,
        &[
            ("ImageId", "ami-12c6146b"),
            ("JobCommand", &command),
            ("MinSize", "1"),
            ("MaxSize", "4"),
            ("DesiredCapacity", "3"),
            ("IdleTimeout", "3s"),
            ("LifecycleHookName", "deploy-test-drain"),
            ("MaxReceiveCount", "3"),
        ],
    );
    assert_eq!(stack["status"], "CREATE_COMPLETE", "{stack}");
    let out = |k: &str| {
        stack["outputs"][k]
            .as_str()
            .unwrap_or_else(|| panic!("output {k} missing: {stack}"))
            .to_string()
    };
    let (url, dlq_url, group) = (out("QueueUrl"), out("DeadLetterQueueUrl"), out("GroupName"));
    assert_eq!(out("LifecycleHookName"), "deploy-test-drain");

    // The user-data: writes drainerd's configuration, starts the unit.
    let toml_text = rendered_config(&stack);
    let conf: toml::Value = toml::from_str(toml_text).unwrap();
    assert_eq!(conf["queue"]["url"].as_str(), Some(url.as_str()));
    assert_eq!(
        conf["job"]["command"],
        toml::Value::Array(vec![job.to_str().unwrap().into()])
    );
    assert_eq!(
        conf["fleet"]["lifecycle_hook"].as_str(),
        Some("deploy-test-drain"),
        "the hook drainerd heartbeats is the group's hook"
    );
    assert!(conf.get("tracking").is_none(), "tracking off by default");

    // What moto created: the redrive, the lease-matched visibility, the group.
    let sqs = moto.sqs();
    let dlq_arn = queue_attr(&sqs, &dlq_url, QueueAttributeName::QueueArn).await;
    let redrive: Value =
        serde_json::from_str(&queue_attr(&sqs, &url, QueueAttributeName::RedrivePolicy).await)
            .unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], dlq_arn.as_str());
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "3"
    );
    assert_eq!(
        queue_attr(&sqs, &url, QueueAttributeName::VisibilityTimeout).await,
        "60"
    );
    let asg = asg_client(&moto.endpoint);
    let described = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&group)
        .send()
        .await
        .unwrap();
    let g = &described.auto_scaling_groups()[0];
    assert_eq!(
        (g.min_size(), g.max_size(), g.desired_capacity()),
        (Some(1), Some(4), Some(3))
    );
    assert_eq!(g.vpc_zone_identifier(), stack["subnets"].as_str());
    assert_eq!(g.new_instances_protected_from_scale_in(), Some(false));
    assert!(
        g.tags().iter().any(|t| t.key() == Some("drainerd")
            && t.value() == Some("managed")
            && t.propagate_at_launch() == Some(true)),
        "{:?}",
        g.tags()
    );
    assert_eq!(g.instances().len(), 3);
    let me = g.instances()[0].instance_id().unwrap().to_string();

    // Work waits in the queue; this worker boots with the rendered
    // configuration. Only what points it at the emulators, and the short
    // check interval and lifetime a test needs, come from the environment.
    let bodies = ["job-1", "job-2", "job-3"];
    for b in bodies {
        send(&sqs, &url, b).await;
    }
    let sim = ImdsSim::start(&me);
    let cfg = wd.write("drainerd.toml", toml_text);
    let mut env = sim.env();
    env.extend([
        ("DRAINERD_QUEUE_ENDPOINT_URL", moto.endpoint.clone()),
        ("DRAINERD_QUEUE_WAIT_TIME", "1s".to_string()),
        ("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()),
        ("DRAINERD_FLEET_CHECK_INTERVAL", "1s".to_string()),
        ("DRAINERD_FLEET_MIN_LIFETIME", "0s".to_string()),
    ]);
    let agent = start_agent(&cfg, &env);

    let drained = eventually(Duration::from_secs(60), || async {
        let mut lines = read_lines(&ran);
        lines.sort();
        (lines == bodies && depth(&sqs, &url).await == (0, 0)).then_some(())
    })
    .await;
    assert!(
        drained.is_some(),
        "jobs run: {:?}, queue (visible, in flight): {:?}; log:\n{}",
        read_lines(&ran),
        depth(&sqs, &url).await,
        agent.logs()
    );
    let gone = eventually(Duration::from_secs(60), || async {
        let out = asg
            .describe_auto_scaling_instances()
            .instance_ids(&me)
            .send()
            .await
            .unwrap();
        out.auto_scaling_instances().is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "the idle worker is still in its group; log:\n{}",
        agent.logs()
    );
    assert_eq!(desired(&asg, &group).await, 2, "desired capacity 3 -> 2");
    assert!(
        agent
            .wait_log("left the Auto Scaling group", Duration::from_secs(10))
            .await,
        "log:\n{}",
        agent.logs()
    );
    assert_eq!(depth(&sqs, &dlq_url).await, (0, 0), "nothing dead-lettered");
}
