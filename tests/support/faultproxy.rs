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
//! Self-contained (std and tokio only, with its HTTP framing in
//! `faultproxy/wire.rs`): `tests/chaos.rs` and `examples/chaos.rs` include
//! it by `#[path]` too. Its framing is tested in `tests/network/framing.rs`.
//!
//! Over 400 lines because the table of faults, the rules and the per-request
//! relay belong together; the HTTP framing is in `faultproxy/wire.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

// A path relative to this file, so the module resolves the same whether
// this file is `support::faultproxy` or included by `#[path]`.
#[path = "faultproxy/wire.rs"]
mod wire;
use wire::{contains, Wire};
pub use wire::{Request, Response};

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
    /// request that reaches the rule after it was added (a share whose
    /// first hit is certain). Rules are tried in the order added and the
    /// first hit wins, so a later rule counts only what earlier ones spared.
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
