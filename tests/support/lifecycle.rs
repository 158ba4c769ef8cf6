//! A stand-in for the Auto Scaling lifecycle-hook API, which moto lacks
//! (test-world.md: RecordLifecycleActionHeartbeat and
//! CompleteLifecycleAction answer 500 there).
//!
//! It answers those two actions itself, validating them as AWS does
//! (aws-facts.md, "Lifecycle hooks"): the group, hook and instance must
//! match an instance held in Terminating:Wait; CompleteLifecycleAction takes
//! CONTINUE or ABANDON and ends the wait, after which both calls fail with
//! ValidationError. Every other Auto Scaling request is relayed to moto
//! (and its action recorded). Optionally it answers
//! TerminateInstanceInAutoScalingGroup with the ValidationError AWS gives a
//! decrement below MinSize ("... min size constraint ..."), which moto does
//! not enforce.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One lifecycle call as received: (action, result or "").
pub type Call = (String, String);

pub struct LifecycleFixture {
    pub endpoint: String,
    pub calls: Arc<Mutex<Vec<Call>>>,
    actions: Arc<Mutex<Vec<String>>>,
}

struct Expect {
    group: String,
    hook: String,
    instance: String,
    waiting: Mutex<bool>,
    reject_min_size: bool,
    actions: Arc<Mutex<Vec<String>>>,
}

impl LifecycleFixture {
    /// Holds `instance` of `group` in Terminating:Wait for `hook`.
    pub async fn start(
        moto_port: u16,
        group: &str,
        hook: &str,
        instance: &str,
    ) -> LifecycleFixture {
        Self::launch(moto_port, group, hook, instance, false).await
    }

    /// Refuses every TerminateInstanceInAutoScalingGroup as AWS does at MinSize.
    pub async fn start_rejecting_min_size(moto_port: u16) -> LifecycleFixture {
        Self::launch(moto_port, "", "", "", true).await
    }

    async fn launch(
        moto_port: u16,
        group: &str,
        hook: &str,
        instance: &str,
        reject_min_size: bool,
    ) -> LifecycleFixture {
        let actions = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let expect = Arc::new(Expect {
            group: group.into(),
            hook: hook.into(),
            instance: instance.into(),
            waiting: Mutex::new(true),
            reject_min_size,
            actions: actions.clone(),
        });
        let c = calls.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (c, e) = (c.clone(), expect.clone());
                tokio::spawn(async move {
                    let _ = handle(stream, moto_port, &c, &e).await;
                });
            }
        });
        LifecycleFixture {
            endpoint: format!("http://127.0.0.1:{port}"),
            calls,
            actions,
        }
    }

    /// Every Auto Scaling action received, in order.
    pub fn actions(&self) -> Vec<String> {
        self.actions.lock().unwrap().clone()
    }

    pub fn terminate_calls(&self) -> usize {
        self.actions()
            .iter()
            .filter(|a| *a == "TerminateInstanceInAutoScalingGroup")
            .count()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return Ok((buf, body));
            }
        }
    }
    Ok((buf, String::new()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(v);
                    i += 2;
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    mut stream: TcpStream,
    moto_port: u16,
    calls: &Mutex<Vec<Call>>,
    e: &Expect,
) -> std::io::Result<()> {
    let (raw, body) = read_request(&mut stream).await?;
    let params = form(&body);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let action = get("Action");
    e.actions.lock().unwrap().push(action.clone());
    let ns = "http://autoscaling.amazonaws.com/doc/2011-01-01/";
    if action == "TerminateInstanceInAutoScalingGroup" && e.reject_min_size {
        let xml = format!("<ErrorResponse xmlns=\"{ns}\"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Currently, desiredSize equals minSize (1). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.</Message></Error><RequestId>fixture</RequestId></ErrorResponse>");
        let resp = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        );
        stream.write_all(resp.as_bytes()).await?;
        return stream.shutdown().await;
    }
    if action != "RecordLifecycleActionHeartbeat" && action != "CompleteLifecycleAction" {
        let mut moto = TcpStream::connect(("127.0.0.1", moto_port)).await?;
        moto.write_all(&raw).await?;
        let mut resp = Vec::new();
        moto.read_to_end(&mut resp).await?;
        stream.write_all(&resp).await?;
        return stream.shutdown().await;
    }
    let result = get("LifecycleActionResult");
    calls.lock().unwrap().push((action.clone(), result.clone()));
    let invalid = if get("AutoScalingGroupName") != e.group {
        Some(format!("Group {} not found", get("AutoScalingGroupName")))
    } else if get("LifecycleHookName") != e.hook {
        Some("No Lifecycle Hook found.".to_string())
    } else if get("InstanceId") != e.instance || !*e.waiting.lock().unwrap() {
        Some(format!(
            "No active Lifecycle Action found with instance ID {}",
            get("InstanceId")
        ))
    } else if action == "CompleteLifecycleAction" && result != "CONTINUE" && result != "ABANDON" {
        Some(format!("Invalid LifecycleActionResult {result}"))
    } else {
        None
    };
    let (status, xml) = match invalid {
        Some(msg) => (
            "400 Bad Request",
            format!("<ErrorResponse xmlns=\"{ns}\"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>{msg}</Message></Error><RequestId>fixture</RequestId></ErrorResponse>"),
        ),
        None => {
            if action == "CompleteLifecycleAction" {
                *e.waiting.lock().unwrap() = false;
            }
            (
                "200 OK",
                format!("<{action}Response xmlns=\"{ns}\"><{action}Result/><ResponseMetadata><RequestId>fixture</RequestId></ResponseMetadata></{action}Response>"),
            )
        }
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
        xml.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}
