//! A fault-injecting HTTP/1.1 proxy between drainerd and moto: the network
//! between an instance and AWS, misbehaving on purpose.
//!
//! drainerd's SDK client keeps connections alive, as it does against AWS.
//! The proxy reads each request (head and `Content-Length` body) from the
//! client's connection, opens a fresh upstream connection per request
//! (moto closes every connection after one response), forwards it, reads
//! the whole response and writes it back re-framed with a `Content-Length`
//! and without moto's `Connection: close`, so the client's connection
//! stays open for the next request, as AWS endpoints keep it.
//!
//! Each request's API is named from the request itself: SQS speaks AWS
//! JSON 1.0 (`X-Amz-Target: AmazonSQS.DeleteMessageBatch`), Auto Scaling the
//! query protocol (`Action=SetInstanceProtection` in the form body).
//!
//! Faults, each chosen per request by a [`Rule`] (a [`Share`] of the
//! matching requests, optionally only some APIs or services), and what each
//! imitates on AWS:
//!
//! | fault | the proxy | on AWS |
//! |---|---|---|
//! | `reset` | closes the connection at once (RST), forwards nothing | a connection reset by a NAT gateway, load balancer or the endpoint; the SDK sees a dispatch failure and retries |
//! | `error500` | answers 500 (`InternalError` / `InternalFailure`) without forwarding | "We encountered an internal error. Please try again."; SDKs retry 5xx |
//! | `throttle` | answers 400 `ThrottlingException` (SQS, JSON with `x-amzn-query-error: ThrottlingException;Sender`) or `Throttling` (Auto Scaling, query XML) without forwarding | "Rate exceeded": Auto Scaling publishes no rate limit; SQS throttles FIFO and API bursts |
//! | `slow` | waits, then forwards | a congested path or a slow endpoint (answers, late) |
//! | `black_hole_before` | reads the request, never forwards, never answers, holds the connection open | a dead NAT entry or a half-open TCP connection: the request leaves, nothing comes back and nothing reports an error; only the client's own timeout ends the wait |
//! | `black_hole_after` | forwards (moto acts), never answers, holds the connection open | the same, with the response lost on the way back: the call took effect, the caller cannot know |
//! | `delay_api` | delays every request of one API by a fixed time, then forwards | one API being slow (e.g. every `DeleteMessageBatch` taking 3 s) |
//! | `down` | resets every connection (or every request of some APIs) for a time | the endpoint unreachable: DNS, routes or the service gone for a while |
//!
//! It counts requests per API and faults per kind, and logs each request
//! (API, fault, when it arrived, when it was answered) for tests that
//! assert an order. It runs on its own thread with its own runtime, so a
//! test that blocks its own threads (waiting for a process to exit) never
//! stalls the network under the agent.
//!
//! Self-contained (std and tokio only): `examples/chaos.rs` includes it by
//! `#[path]` too. Its framing is tested in `tests/network/framing.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Reset,
    Error500,
    Throttle,
    /// Wait this long, then forward.
    Slow(Duration),
    BlackHoleBefore,
    BlackHoleAfter,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Reset => "reset",
            Fault::Error500 => "error500",
            Fault::Throttle => "throttle",
            Fault::Slow(_) => "slow",
            Fault::BlackHoleBefore => "black_hole_before",
            Fault::BlackHoleAfter => "black_hole_after",
        }
    }
}

/// Which of the matching requests a rule hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    /// Each with this probability (0.0–1.0), from the proxy's seeded generator.
    Random(f64),
    /// Deterministically one in `n`: the 1st, the (n+1)th, ... matching
    /// request after the rule was added (a share whose first hit is certain).
    Every(u64),
}

/// A fault for a share of the requests that match it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub fault: Fault,
    pub share: Share,
    /// API names (`DeleteMessageBatch`) or services (`sqs`, `autoscaling`);
    /// empty: every request.
    pub apis: Vec<String>,
    /// Only requests whose body contains this (e.g. hand-backs:
    /// `"VisibilityTimeout":0`).
    pub body_contains: Option<String>,
    matched: u64,
}

impl Rule {
    pub fn new(fault: Fault, share: Share) -> Rule {
        Rule {
            fault,
            share,
            apis: Vec::new(),
            body_contains: None,
            matched: 0,
        }
    }
    pub fn apis(mut self, apis: &[&str]) -> Rule {
        self.apis = apis.iter().map(|a| a.to_string()).collect();
        self
    }
    pub fn body_contains(mut self, needle: &str) -> Rule {
        self.body_contains = Some(needle.to_string());
        self
    }
    fn matches(&self, req: &Request) -> bool {
        applies(&self.apis, req)
            && self
                .body_contains
                .as_ref()
                .is_none_or(|n| contains(&req.body, n.as_bytes()))
    }
}

fn applies(apis: &[String], req: &Request) -> bool {
    apis.is_empty() || apis.iter().any(|a| *a == req.api || a == req.service)
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Event {
    pub api: String,
    /// `sqs`, `autoscaling` or `other`.
    pub service: &'static str,
    /// The fault applied (`delay_api` included), if any.
    pub fault: Option<&'static str>,
    pub received: Instant,
    /// When the response started to go to the client (set once it was
    /// written; never for resets and black holes).
    pub answered: Option<Instant>,
    pub status: Option<u16>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    delays: Vec<(String, Duration)>,
    down_until: Option<Instant>,
    down_apis: Vec<String>,
    rng: u64,
    requests: BTreeMap<String, u64>,
    faults: BTreeMap<&'static str, u64>,
    events: Vec<Event>,
}

impl State {
    /// splitmix64: a seeded generator needs no crate.
    fn next_f64(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn down(&self, req: Option<&Request>) -> bool {
        self.down_until.is_some_and(|t| Instant::now() < t)
            && match req {
                None => self.down_apis.is_empty(),
                Some(r) => applies(&self.down_apis, r),
            }
    }

    fn count(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }
}

/// What happens to one request, decided when it has been read.
struct Decision {
    down: bool,
    delay: Duration,
    fault: Option<Fault>,
    event: usize,
}

/// The proxy: listens on 127.0.0.1 and forwards to an upstream port.
pub struct FaultProxy {
    pub port: u16,
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    stop: watch::Sender<bool>,
}

impl FaultProxy {
    /// A proxy to `127.0.0.1:upstream_port` with no faults yet.
    pub fn start(upstream_port: u16) -> FaultProxy {
        FaultProxy::start_seeded(upstream_port, 0x5eed)
    }

    /// As [`FaultProxy::start`], with the seed of its random shares.
    pub fn start_seeded(upstream_port: u16, seed: u64) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(Mutex::new(State {
            rng: seed,
            ..State::default()
        }));
        let (stop, stopped) = watch::channel(false);
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream_port).into();
        let st = state.clone();
        std::thread::Builder::new()
            .name(format!("faultproxy-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fault proxy runtime");
                rt.block_on(accept_loop(listener, upstream, st, stopped));
            })
            .expect("fault proxy thread");
        FaultProxy {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            stop,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fault proxy state"))
    }

    /// Adds a rule (rules are tried in the order added; the first hit wins).
    pub fn add(&self, rule: Rule) {
        self.with(|s| s.rules.push(rule));
    }

    /// Removes every rule, delay and outage.
    pub fn clear(&self) {
        self.with(|s| {
            s.rules.clear();
            s.delays.clear();
            s.down_until = None;
        });
    }

    /// Delays every request of `api` by `delay` before forwarding it.
    pub fn delay_api(&self, api: &str, delay: Duration) {
        self.with(|s| s.delays.push((api.to_string(), delay)));
    }

    /// Resets every connection for `period` (`apis` empty), or every request
    /// of `apis` (API names or services).
    pub fn down_for(&self, period: Duration, apis: &[&str]) {
        self.with(|s| {
            s.down_until = Some(Instant::now() + period);
            s.down_apis = apis.iter().map(|a| a.to_string()).collect();
        });
    }

    /// Requests received for `api` (an API name or a service).
    pub fn requests(&self, api: &str) -> u64 {
        self.with(|s| {
            s.events
                .iter()
                .filter(|e| e.api == api || e.service == api)
                .count() as u64
        })
    }

    /// Requests received, per API.
    pub fn requests_by_api(&self) -> BTreeMap<String, u64> {
        self.with(|s| s.requests.clone())
    }

    /// Faults injected of `kind` (`reset`, `black_hole_before`, ...).
    pub fn injected(&self, kind: &str) -> u64 {
        self.with(|s| s.faults.get(kind).copied().unwrap_or(0))
    }

    /// Faults injected, per kind.
    pub fn faults(&self) -> BTreeMap<&'static str, u64> {
        self.with(|s| s.faults.clone())
    }

    /// Every request so far, in the order received.
    pub fn events(&self) -> Vec<Event> {
        self.with(|s| s.events.clone())
    }

    fn decide(state: &Mutex<State>, req: &Request) -> Decision {
        let mut s = state.lock().expect("fault proxy state");
        *s.requests.entry(req.api.clone()).or_default() += 1;
        let event = s.events.len();
        let mut d = Decision {
            down: s.down(Some(req)),
            delay: Duration::ZERO,
            fault: None,
            event,
        };
        let mut kind = None;
        if d.down {
            kind = Some("down");
        } else {
            if let Some((_, delay)) = s.delays.iter().find(|(a, _)| *a == req.api) {
                d.delay = *delay;
                kind = Some("delay_api");
            }
            for i in 0..s.rules.len() {
                if !s.rules[i].matches(req) {
                    continue;
                }
                s.rules[i].matched += 1;
                let hit = match s.rules[i].share {
                    Share::Random(p) => s.next_f64() < p,
                    Share::Every(n) => (s.rules[i].matched - 1) % n.max(1) == 0,
                };
                if hit {
                    d.fault = Some(s.rules[i].fault);
                    kind = Some(s.rules[i].fault.name());
                    break;
                }
            }
        }
        if d.delay > Duration::ZERO {
            s.count("delay_api");
        }
        if let Some(f) = d.fault {
            s.count(f.name());
        }
        if d.down {
            s.count("down");
        }
        s.events.push(Event {
            api: req.api.clone(),
            service: req.service,
            fault: kind,
            received: Instant::now(),
            answered: None,
            status: None,
        });
        d
    }

    fn answered(state: &Mutex<State>, event: usize, at: Instant, status: u16) {
        let mut s = state.lock().expect("fault proxy state");
        if let Some(e) = s.events.get_mut(event) {
            e.answered = Some(at);
            e.status = Some(status);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    mut stopped: watch::Receiver<bool>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let conn = tokio::select! {
            _ = stopped.changed() => return,
            c = listener.accept() => c,
        };
        let Ok((client, _)) = conn else { continue };
        let _ = client.set_nodelay(true);
        if state.lock().expect("fault proxy state").down(None) {
            state.lock().expect("fault proxy state").count("down");
            let _ = client.set_zero_linger();
            continue;
        }
        let (st, mut stop) = (state.clone(), stopped.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.changed() => {}
                () = serve(client, upstream, st) => {}
            }
        });
    }
}

/// Serves one client connection: request after request until it closes.
async fn serve(mut client: TcpStream, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    let mut wire = Wire::default();
    loop {
        let req = match wire.request(&mut client).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        let d = FaultProxy::decide(&state, &req);
        if d.down {
            let _ = client.set_zero_linger();
            return;
        }
        if d.delay > Duration::ZERO {
            tokio::time::sleep(d.delay).await;
        }
        let response = match d.fault {
            Some(Fault::Reset) => {
                let _ = client.set_zero_linger();
                return;
            }
            Some(Fault::BlackHoleBefore) => return hold(client).await,
            Some(Fault::BlackHoleAfter) => {
                let _ = forward(upstream, &req).await;
                return hold(client).await;
            }
            Some(Fault::Error500) => error500(req.json),
            Some(Fault::Throttle) => throttle(req.json),
            Some(Fault::Slow(wait)) => {
                tokio::time::sleep(wait).await;
                forward(upstream, &req).await
            }
            None => forward(upstream, &req).await,
        };
        let Ok(resp) = response else {
            // Upstream unreachable: the client sees the connection close.
            let _ = client.set_zero_linger();
            return;
        };
        let bytes = resp.to_bytes(req.close);
        // Stamped before the write: whatever the client does in reaction
        // comes after this instant.
        let at = Instant::now();
        if client.write_all(&bytes).await.is_err() {
            return;
        }
        FaultProxy::answered(&state, d.event, at, resp.status);
        if req.close {
            let _ = client.shutdown().await;
            return;
        }
    }
}

/// Holds a connection open, answering nothing, until the client gives up.
async fn hold(mut client: TcpStream) {
    let mut scratch = [0u8; 4096];
    while matches!(client.read(&mut scratch).await, Ok(n) if n > 0) {}
}

/// A request read from the client.
#[derive(Debug)]
pub struct Request {
    /// Start line and headers, as received.
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub api: String,
    pub service: &'static str,
    /// AWS JSON protocol (answers errors in JSON), else query (XML).
    pub json: bool,
    /// The client asked to close after this response.
    pub close: bool,
}

impl Request {
    fn parse(start: String, headers: Vec<(String, String)>, body: Vec<u8>) -> Request {
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.trim().to_string())
        };
        let target = header("x-amz-target");
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (api, service, json) = match target {
            Some(t) => {
                let (prefix, op) = t.split_once('.').unwrap_or(("", t.as_str()));
                let service = if prefix.starts_with("AmazonSQS") {
                    "sqs"
                } else {
                    "other"
                };
                (op.to_string(), service, true)
            }
            None => {
                let form = String::from_utf8_lossy(&body);
                let query = start.split_whitespace().nth(1).unwrap_or("");
                let query = query.split_once('?').map(|q| q.1).unwrap_or("");
                let field = |k: &str| {
                    form.split('&')
                        .chain(query.split('&'))
                        .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                        .map(str::to_string)
                };
                let service = match field("Version").as_deref() {
                    Some("2011-01-01") => "autoscaling",
                    Some("2012-11-05") => "sqs",
                    _ => "other",
                };
                let api = field("Action").unwrap_or_else(|| "unknown".into());
                (api, service, false)
            }
        };
        Request {
            start,
            headers,
            body,
            api,
            service,
            json,
            close,
        }
    }

    /// The request for upstream: framed by `Content-Length`, closing.
    fn upstream_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start).into_bytes();
        for (k, v) in &self.headers {
            if !hop_by_hop(k) {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                self.body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response for the client.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Re-framed for a kept-alive client: `Content-Length`, no `Connection`
    /// (unless the client asked to close).
    fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason).into_bytes();
        for (k, v) in &self.headers {
            if !hop_by_hop(k) {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn canned(status: u16, reason: &str, headers: &[(&str, &str)], body: &str) -> Response {
    Response {
        status,
        reason: reason.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

const JSON: &str = "application/x-amz-json-1.0";

fn error500(json: bool) -> std::io::Result<Response> {
    Ok(if json {
        canned(
            500,
            "Internal Server Error",
            &[
                ("Content-Type", JSON),
                ("x-amzn-query-error", "InternalError;Receiver"),
            ],
            r#"{"__type":"com.amazonaws.sqs#InternalError","message":"We encountered an internal error. Please try again."}"#,
        )
    } else {
        canned(
            500,
            "Internal Server Error",
            &[("Content-Type", "text/xml")],
            "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>We encountered an internal error. Please try again.</Message></Error><RequestId>faultproxy</RequestId></ErrorResponse>",
        )
    })
}

fn throttle(json: bool) -> std::io::Result<Response> {
    Ok(if json {
        canned(
            400,
            "Bad Request",
            &[
                ("Content-Type", JSON),
                ("x-amzn-query-error", "ThrottlingException;Sender"),
            ],
            r#"{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}"#,
        )
    } else {
        canned(
            400,
            "Bad Request",
            &[("Content-Type", "text/xml")],
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>faultproxy</RequestId></ErrorResponse>",
        )
    })
}

/// Sends `req` over a fresh upstream connection and reads the whole answer.
async fn forward(upstream: SocketAddr, req: &Request) -> std::io::Result<Response> {
    let mut up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    up.write_all(&req.upstream_bytes()).await?;
    let mut wire = Wire::default();
    wire.response(&mut up).await
}

/// Buffered HTTP/1.1 message reading over one connection.
#[derive(Default)]
struct Wire {
    buf: Vec<u8>,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

impl Wire {
    /// Reads more; false at end of stream.
    async fn fill<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = s.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Start line and headers; `None` at a clean end of stream.
    async fn head<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
    ) -> std::io::Result<Option<(String, Vec<(String, String)>)>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let start = lines.next().unwrap_or_default().to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                return Ok(Some((start, headers)));
            }
            if !self.fill(s).await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(bad("end of stream inside a message head"))
                };
            }
        }
    }

    async fn exact<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        n: usize,
    ) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill(s).await? {
                return Err(bad("end of stream inside a body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn line<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> std::io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if !self.fill(s).await? {
                return Err(bad("end of stream inside a chunked body"));
            }
        }
    }

    /// A body framed by `headers`: Content-Length, chunked, or (`to_eof`,
    /// responses only) everything until the peer closes.
    async fn body<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        headers: &[(String, String)],
        to_eof: bool,
    ) -> std::io::Result<Vec<u8>> {
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let size = self.line(s).await?;
                let size = size.split(';').next().unwrap_or("").trim();
                let n = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
                if n == 0 {
                    // Trailers, up to the empty line.
                    while !self.line(s).await?.is_empty() {}
                    return Ok(body);
                }
                body.extend(self.exact(s, n).await?);
                self.exact(s, 2).await?;
            }
        }
        if let Some(len) = header("content-length") {
            let n = len.trim().parse().map_err(|_| bad("bad Content-Length"))?;
            return self.exact(s, n).await;
        }
        if to_eof {
            while self.fill(s).await? {}
            return Ok(std::mem::take(&mut self.buf));
        }
        Ok(Vec::new())
    }

    async fn request<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
    ) -> std::io::Result<Option<Request>> {
        let Some((start, headers)) = self.head(s).await? else {
            return Ok(None);
        };
        let body = self.body(s, &headers, false).await?;
        Ok(Some(Request::parse(start, headers, body)))
    }

    async fn response<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> std::io::Result<Response> {
        let (start, headers) = self
            .head(s)
            .await?
            .ok_or_else(|| bad("upstream closed without an answer"))?;
        let mut parts = start.splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let reason = parts.next().unwrap_or("").to_string();
        let body = if status < 200 || status == 204 || status == 304 {
            Vec::new()
        } else {
            self.body(s, &headers, true).await?
        };
        Ok(Response {
            status,
            reason,
            headers,
            body,
        })
    }
}
