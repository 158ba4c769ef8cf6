//! moto server (SQS, Auto Scaling, EC2, DynamoDB on one port) and the
//! SDK clients and queue helpers the tests use against it.

use super::*;

/// A moto server on loopback, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = Path::new(ROOT).join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test (it installs moto into .venv)",
            bin.display()
        );
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let mut moto = Moto {
                child,
                port,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return moto;
                }
                if moto.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = moto.child.kill();
        }
        panic!("moto_server did not start");
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        sqs_client(&self.endpoint)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDK settings every test client uses: moto at `endpoint`, its test
/// credentials, drainerd's HTTP client.
fn test_sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "tests"),
        ))
        .http_client(drainerd::aws::https_client())
        .build()
}

pub fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&test_sdk(endpoint))
}

/// Creates `name` (and `name-dlq` when `max_receives` is set, with a redrive
/// policy). Returns (queue URL, DLQ URL).
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receives: Option<u32>,
) -> (String, Option<String>) {
    let mut dlq_url = None;
    let mut req = sqs.create_queue().queue_name(name);
    if let Some(n) = max_receives {
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        req = req.attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{n}"}}"#),
        );
        dlq_url = Some(dlq);
    }
    let url = req.send().await.unwrap().queue_url().unwrap().to_string();
    (url, dlq_url)
}

pub async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str) -> String {
    sqs.send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap()
        .message_id()
        .unwrap()
        .to_string()
}

/// (visible, in flight) from the queue's approximate counters.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let a = out.attributes().unwrap();
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// A message as a second consumer sees it: (id, body, receive count).
pub async fn receive_one(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    wait_secs: i32,
) -> Option<(String, String, u32)> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(wait_secs)
        .max_number_of_messages(1)
        .visibility_timeout(30)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let m = out.messages().first()?;
    Some((
        m.message_id().unwrap().to_string(),
        m.body().unwrap_or_default().to_string(),
        m.attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
    ))
}

/// Receives as a second consumer until the message with id or body
/// `id_or_body` arrives (a hand-back's copy has a new id) or `limit`
/// passes. Returns whether it arrived and every message received on the
/// way (each stays invisible for 30 s, so a test must look at these rather
/// than receive them again).
pub async fn receive_until(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    id_or_body: &str,
    limit: Duration,
) -> (bool, Vec<(String, String, u32)>) {
    let seen = std::sync::Mutex::new(Vec::new());
    let found = eventually(limit, || async {
        let m = receive_one(sqs, url, 1).await?;
        let hit = (m.0 == id_or_body || m.1 == id_or_body).then_some(());
        seen.lock().unwrap().push(m);
        hit
    })
    .await;
    (found.is_some(), seen.into_inner().unwrap())
}

pub fn asg_client(endpoint: &str) -> aws_sdk_autoscaling::Client {
    aws_sdk_autoscaling::Client::new(&test_sdk(endpoint))
}

/// A group of `size` instances (min 1, max 5) from a launch template
/// (created with boto3 from `.venv`: drainerd has no EC2 client); returns
/// its instance ids.
pub async fn create_group(
    asg: &aws_sdk_autoscaling::Client,
    endpoint: &str,
    name: &str,
    size: i32,
) -> Vec<String> {
    let script = "import boto3, sys\n\
        kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
        boto3.client('ec2', **kw).create_launch_template(LaunchTemplateName=sys.argv[2] + '-lt', LaunchTemplateData={'ImageId': 'ami-12c6146b', 'InstanceType': 't3.micro'})\n";
    let out = Command::new(Path::new(ROOT).join(".venv/bin/python"))
        .args(["-c", script, endpoint, name])
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name(format!("{name}-lt"))
                .version("$Latest")
                .build(),
        )
        .min_size(1)
        .max_size(5)
        .desired_capacity(size)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()[0]
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect()
}

/// The EC2 state of `instance_id` in moto ("running", "terminated", ...),
/// read with boto3 from `.venv` (drainerd itself never calls EC2).
pub fn ec2_state(endpoint: &str, instance_id: &str) -> String {
    let script = "import boto3, sys\n\
        ec2 = boto3.client('ec2', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
        r = ec2.describe_instances(InstanceIds=[sys.argv[2]])\n\
        print(r['Reservations'][0]['Instances'][0]['State']['Name'])\n";
    let out = Command::new(Path::new(ROOT).join(".venv/bin/python"))
        .args(["-c", script, endpoint, instance_id])
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A DynamoDB client for moto (moto serves DynamoDB on the same port).
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&test_sdk(endpoint))
}
