//! The fault proxy's own tests: HTTP/1.1 framing, API naming and each
//! fault, against a tiny local upstream that answers as moto does (one
//! response per connection, then close).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::faultproxy::{Fault, FaultProxy, Rule, Share};

/// What the upstream received: (request head, body) per connection.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Reads one message (head + Content-Length body) from `s`; `None` when
/// the stream ends first or nothing comes within `limit`.
async fn read_message(s: &mut TcpStream, limit: Duration) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some((head, buf[end + 4..end + 4 + len].to_vec()));
            }
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// An upstream like moto: one request per connection, answered by path
/// (`/chunked`, `/eof`, else Content-Length), echoing the API it was sent.
async fn upstream() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = s2.clone();
            tokio::spawn(async move {
                let Some((head, body)) = read_message(&mut s, Duration::from_secs(5)).await else {
                    return;
                };
                seen.lock().unwrap().push((head.clone(), body.clone()));
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let answer = format!("seen {} bytes", body.len());
                let resp = match path.as_str() {
                    "/chunked" => format!(
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nseen \r\n{:x}\r\n{}\r\n0\r\n\r\n",
                        answer.len() - 5,
                        &answer[5..]
                    ),
                    "/eof" => format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{answer}"),
                    _ => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    ),
                };
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, seen)
}

fn sqs_request(op: &str, body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: sqs\r\nX-Amz-Target: AmazonSQS.{op}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn asg_request(action: &str) -> String {
    let body = format!("Action={action}&Version=2011-01-01&InstanceIds.member.1=i-1");
    format!(
        "POST / HTTP/1.1\r\nHost: autoscaling\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const ANSWER: Duration = Duration::from_secs(5);
/// Long enough to tell "no answer" from a loopback answer (milliseconds);
/// a black hole never answers, so a slow machine cannot fail this.
const SILENCE: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_connection_many_requests_each_upstream_fresh() {
    let (port, seen) = upstream().await;
    let proxy = FaultProxy::start(port);
    let mut c = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    c.write_all(sqs_request("ReceiveMessage", r#"{"QueueUrl":"q"}"#).as_bytes())
        .await
        .unwrap();
    let (head, body) = read_message(&mut c, ANSWER).await.expect("first answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(body, b"seen 16 bytes");
    // The second request on the same connection, its body in two writes.
    let req = sqs_request("DeleteMessageBatch", r#"{"QueueUrl":"q","Entries":[]}"#);
    let (a, b) = req.split_at(req.len() - 10);
    c.write_all(a.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(b.as_bytes()).await.unwrap();
    let (head, body) = read_message(&mut c, ANSWER).await.expect("second answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"seen 29 bytes");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "a fresh upstream connection per request");
    assert!(seen[1]
        .0
        .contains("X-Amz-Target: AmazonSQS.DeleteMessageBatch"));
    assert!(seen[1].0.contains("Connection: close"), "{}", seen[1].0);
    assert_eq!(seen[1].1, br#"{"QueueUrl":"q","Entries":[]}"#);
    let by_api = proxy.requests_by_api();
    assert_eq!(by_api.get("ReceiveMessage"), Some(&1));
    assert_eq!(by_api.get("DeleteMessageBatch"), Some(&1));
    assert_eq!(proxy.requests("sqs"), 2);
    let all = crate::support::eventually(ANSWER, || async {
        proxy
            .events()
            .iter()
            .all(|e| e.answered.is_some() && e.status == Some(200))
            .then_some(())
    })
    .await;
    assert!(all.is_some(), "{:?}", proxy.events());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_close_delimited_answers_are_reframed() {
    let (port, _) = upstream().await;
    let proxy = FaultProxy::start(port);
    let mut c = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    for path in ["/chunked", "/eof"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        c.write_all(req.as_bytes()).await.unwrap();
        let (head, body) = read_message(&mut c, ANSWER).await.expect(path);
        assert!(head.contains("Content-Length: 12"), "{path}: {head}");
        assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
        assert_eq!(body, b"seen 0 bytes", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_protocol_actions_are_named_and_errors_answer_in_each_protocol() {
    let (port, seen) = upstream().await;
    let proxy = FaultProxy::start(port);
    proxy.add(
        Rule::new(Fault::Throttle, Share::Every(1)).apis(&["autoscaling", "GetQueueAttributes"]),
    );
    proxy.add(Rule::new(Fault::Error500, Share::Every(1)).apis(&["SendMessage"]));
    let mut c = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();

    c.write_all(asg_request("SetInstanceProtection").as_bytes())
        .await
        .unwrap();
    let (head, body) = read_message(&mut c, ANSWER).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("<Code>Throttling</Code><Message>Rate exceeded</Message>"),
        "{body}"
    );

    c.write_all(sqs_request("GetQueueAttributes", "{}").as_bytes())
        .await
        .unwrap();
    let (head, body) = read_message(&mut c, ANSWER).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        head.contains("x-amzn-query-error: ThrottlingException;Sender"),
        "{head}"
    );
    assert_eq!(
        body,
        br#"{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}"#
    );

    c.write_all(sqs_request("SendMessage", "{}").as_bytes())
        .await
        .unwrap();
    let (head, body) = read_message(&mut c, ANSWER).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    assert!(String::from_utf8(body).unwrap().contains("InternalError"));

    assert!(
        seen.lock().unwrap().is_empty(),
        "answered without forwarding"
    );
    assert_eq!(proxy.requests("autoscaling"), 1);
    assert_eq!(
        proxy.requests_by_api().get("SetInstanceProtection"),
        Some(&1)
    );
    assert_eq!(proxy.injected("throttle"), 2);
    assert_eq!(proxy.injected("error500"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_and_black_holes_answer_nothing() {
    let (port, seen) = upstream().await;
    let proxy = FaultProxy::start(port);
    proxy.add(Rule::new(Fault::Reset, Share::Every(1)).apis(&["ReceiveMessage"]));
    proxy.add(Rule::new(Fault::BlackHoleBefore, Share::Every(1)).apis(&["DeleteMessageBatch"]));
    proxy.add(
        Rule::new(Fault::BlackHoleAfter, Share::Every(1))
            .apis(&["ChangeMessageVisibilityBatch"])
            .body_contains(r#""VisibilityTimeout":0"#),
    );
    let port = proxy.port;
    // A fresh connection each: a reset or black-holed one is done for.
    let ask = |req: String| async move {
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        c.write_all(req.as_bytes()).await.unwrap();
        read_message(&mut c, SILENCE).await
    };

    assert!(
        ask(sqs_request("ReceiveMessage", "{}")).await.is_none(),
        "reset"
    );
    assert!(
        ask(sqs_request("DeleteMessageBatch", "{}")).await.is_none(),
        "black hole"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing forwarded before");
    let hand_back = r#"{"Entries":[{"Id":"0","VisibilityTimeout":0}]}"#;
    assert!(ask(sqs_request("ChangeMessageVisibilityBatch", hand_back))
        .await
        .is_none());
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "forwarded, then never answered"
    );
    let renewal = r#"{"Entries":[{"Id":"0","VisibilityTimeout":60}]}"#;
    assert!(
        ask(sqs_request("ChangeMessageVisibilityBatch", renewal))
            .await
            .is_some(),
        "the body filter spares renewals"
    );
    let faults = proxy.faults();
    assert_eq!(faults.get("reset"), Some(&1));
    assert_eq!(faults.get("black_hole_before"), Some(&1));
    assert_eq!(faults.get("black_hole_after"), Some(&1));
    let events = proxy.events();
    assert!(events[..3].iter().all(|e| e.answered.is_none()));
    // Recorded once the answer is written: the client may read it first.
    let recorded =
        crate::support::eventually(ANSWER, || async { proxy.events()[3].answered }).await;
    assert!(recorded.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nth_delays_and_outages() {
    let (port, seen) = upstream().await;
    let proxy = FaultProxy::start(port);
    proxy.add(Rule::new(Fault::Error500, Share::Every(3)).apis(&["SendMessage"]));
    let mut statuses = Vec::new();
    let mut c = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    for _ in 0..6 {
        c.write_all(sqs_request("SendMessage", "{}").as_bytes())
            .await
            .unwrap();
        let (head, _) = read_message(&mut c, ANSWER).await.unwrap();
        statuses.push(head[9..12].to_string());
    }
    assert_eq!(statuses, ["500", "200", "200", "500", "200", "200"]);

    proxy.clear();
    proxy.delay_api("DeleteMessageBatch", Duration::from_millis(600));
    let start = Instant::now();
    c.write_all(sqs_request("DeleteMessageBatch", "{}").as_bytes())
        .await
        .unwrap();
    assert!(read_message(&mut c, ANSWER).await.is_some());
    assert!(start.elapsed() >= Duration::from_millis(600));
    assert_eq!(proxy.injected("delay_api"), 1);

    // Down for Auto Scaling only: its requests are reset, SQS still answers.
    proxy.down_for(Duration::from_secs(30), &["autoscaling"]);
    c.write_all(sqs_request("SendMessage", "{}").as_bytes())
        .await
        .unwrap();
    assert!(read_message(&mut c, ANSWER).await.is_some());
    c.write_all(asg_request("DescribeAutoScalingInstances").as_bytes())
        .await
        .unwrap();
    assert!(read_message(&mut c, SILENCE).await.is_none());
    // Down for everything: new connections are reset at once.
    proxy.down_for(Duration::from_secs(30), &[]);
    let before = seen.lock().unwrap().len();
    // (The reset may already fail the connect.)
    if let Ok(mut c) = TcpStream::connect(("127.0.0.1", proxy.port)).await {
        let _ = c
            .write_all(sqs_request("SendMessage", "{}").as_bytes())
            .await;
        assert!(read_message(&mut c, SILENCE).await.is_none());
    }
    assert_eq!(seen.lock().unwrap().len(), before);
    assert_eq!(proxy.injected("down"), 2);
    proxy.clear();
    let mut c = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    c.write_all(sqs_request("SendMessage", "{}").as_bytes())
        .await
        .unwrap();
    assert!(read_message(&mut c, ANSWER).await.is_some(), "back up");
}
