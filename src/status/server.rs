//! The HTTP edge of the status page: routes, the control buttons' guards,
//! and the server loop. What is shown is built in `snapshot`; what the
//! buttons do is the fleet task's (they send it a request).
//!
//! Every request must name this page in its `Host` header (a DNS-rebinding
//! page names its own host). Read-only endpoints need nothing more. The
//! two buttons (POST `/spawn`, POST `/leave`) are refused unless
//! `status.control_token` is set and sent with the request, refused from
//! another origin, and rate-limited; the token is checked first, so
//! presses without it never spend the rate limit.
//!
//! Under abuse: headers must arrive within [`HEADER_TIMEOUT`] and fit in
//! [`MAX_HEADER_BYTES`], a body within [`BODY_TIMEOUT`] and [`MAX_BODY`],
//! a connection lasts at most [`CONNECTION_LIFETIME`], and at
//! [`MAX_CONNECTIONS`] open the oldest is closed for the newest, so slow
//! clients can hold neither file descriptors nor `/healthz` for long.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::board::{Board, Figures};
use super::counters::Counters;
use super::snapshot::{self, InstanceInfo, Liveness, Snapshot, WEDGED_AFTER};
use super::{metrics, page};
use crate::config::StatusConfig;
use crate::control::Task;
use crate::drain::occupancy::Occupancy;
use crate::fleet::Request as FleetRequest;

mod buttons;
mod guards;
pub use guards::{cross_origin, form_token, host_allowed, host_name, Limiter, Refusals};

/// Open connections at most (file descriptors are the agent's, and jobs
/// need them); beyond it the oldest is closed for each new one.
pub const MAX_CONNECTIONS: usize = 256;
/// A form post is a token and nothing else.
pub const MAX_BODY: usize = 4096;
/// The request line and headers, at most (hyper answers 431 beyond).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long a client may take to send its headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send a button's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections waiting to be accepted, at most (the kernel caps it at
/// `net.core.somaxconn`, 4096 by default).
const LISTEN_BACKLOG: u32 = 1024;
/// The longest a connection stays open, whatever it does.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// What the server reads and acts on.
pub struct Server {
    pub cfg: StatusConfig,
    pub counters: Arc<Counters>,
    pub occupancy: Arc<Occupancy>,
    pub board: Arc<Board>,
    pub instance: InstanceInfo,
    pub queue_url: String,
    pub started: SystemTime,
    /// The fleet task's requests (`None`: not a known group member, the
    /// fleet logic is off).
    pub fleet: Option<mpsc::Sender<FleetRequest>>,
    pub limiter: Limiter,
    pub refusals: Refusals,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";

impl Server {
    /// A view of everything: marks the board as looked at.
    fn snapshot(&self) -> Snapshot {
        let figures = self.board.view(self.cfg.refresh_interval.0);
        self.snapshot_of(&figures)
    }

    fn snapshot_of(&self, figures: &Figures) -> Snapshot {
        let live = Liveness {
            started: self.started,
            last_tick: self.counters.last_tick(),
            queue_ok: self.counters.queue_ok(),
        };
        snapshot::snapshot(
            &self.counters,
            &self.occupancy.now(),
            figures,
            &self.instance,
            &self.queue_url,
            live,
            self.cfg.control_token.is_some(),
            SystemTime::now(),
        )
    }

    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let host = req
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("\u{fffd}"));
        if !host_allowed(host, self.cfg.addr(), &self.cfg.allowed_hosts) {
            let host = host.unwrap_or_default();
            self.refusals.refused(&self.counters, "host", host);
            return reply(
                StatusCode::FORBIDDEN,
                TEXT,
                "this page answers only to its own host names: add this one to status.allowed_hosts\n",
            );
        }
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        match (method, path.as_str()) {
            (Method::GET | Method::HEAD, "/") => {
                reply(StatusCode::OK, HTML, page::render(&self.snapshot()))
            }
            (Method::GET | Method::HEAD, "/status.json") => {
                let body = serde_json::to_vec_pretty(&self.snapshot()).unwrap_or_default();
                reply(StatusCode::OK, JSON, body)
            }
            (Method::GET | Method::HEAD, "/metrics") => {
                let s = self.snapshot();
                reply(
                    StatusCode::OK,
                    metrics::CONTENT_TYPE,
                    metrics::render(&s, &self.counters),
                )
            }
            (Method::GET | Method::HEAD, "/healthz") => {
                let live = self
                    .counters
                    .last_tick()
                    .map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
                match live {
                    Some(d) if d < WEDGED_AFTER => reply(StatusCode::OK, TEXT, "ok\n"),
                    Some(d) => reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        TEXT,
                        format!("main loop silent for {}s\n", d.as_secs()),
                    ),
                    None => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "starting\n"),
                }
            }
            (Method::GET | Method::HEAD, "/readyz") => {
                // Probes are frequent: they must not keep the figures
                // refreshing, so this reads the agent's state only.
                let s = self.snapshot_of(&Figures::default());
                if s.agent.ready {
                    reply(StatusCode::OK, TEXT, "ready\n")
                } else {
                    let why = match (s.agent.state, &s.agent.cannot_start) {
                        ("starting", _) => "starting: the queue has not answered yet".to_string(),
                        ("draining", _) => "draining: not taking work".to_string(),
                        (_, Some(e)) => format!("jobs cannot start ({e}): not taking work"),
                        _ => "the queue does not answer".to_string(),
                    };
                    reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n"))
                }
            }
            (Method::POST, "/spawn" | "/leave") => self.button(req, &path).await,
            (_, "/" | "/status.json" | "/metrics" | "/healthz" | "/readyz") => {
                let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                r
            }
            (_, "/spawn" | "/leave") => {
                let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "POST only\n");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                r
            }
            _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
        }
    }
}

/// Binds `status.listen`. Failing to bind is logged by the caller; the
/// agent drains without its page.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(cfg: &StatusConfig) -> std::io::Result<TcpListener> {
    let addr: SocketAddr = cfg.addr();
    // A deeper backlog than tokio's 128: a burst of connections waits for
    // the accept loop (which makes room at the cap) rather than having
    // its SYNs dropped, and a health check's with them.
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    let loopback = addr.ip().is_loopback();
    match (loopback, cfg.control_token.is_some()) {
        (true, _) => {
            tracing::info!(listen = %addr, buttons = cfg.control_token.is_some(), "status page listening")
        }
        (false, false) => {
            tracing::warn!(listen = %addr, "status page listening on a non-loopback address without status.control_token: read-only endpoints only, buttons disabled")
        }
        (false, true) => {
            tracing::warn!(listen = %addr, "status page listening on a non-loopback address with buttons enabled: the token travels in plain HTTP; restrict the port (security group) or use an SSH tunnel")
        }
    }
    Ok(listener)
}

/// The serving task: a bound listener and what it serves.
pub struct Page {
    pub listener: TcpListener,
    pub server: Arc<Server>,
}

impl Task for Page {
    const NAME: &'static str = "status page";

    async fn run(self, stop: CancellationToken) {
        serve(self.listener, self.server, stop).await;
    }
}

/// The open connections, oldest first, each with the token that closes it.
#[derive(Default)]
struct Open {
    next: u64,
    conns: std::collections::BTreeMap<u64, CancellationToken>,
}

/// Serves until `stop`.
async fn serve(listener: TcpListener, server: Arc<Server>, stop: CancellationToken) {
    let open = Arc::new(std::sync::Mutex::new(Open::default()));
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "status page: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // At the cap, the oldest connection makes room: a slow client
        // cannot keep newer ones (a health check) waiting.
        let (id, close) = {
            let mut o = open.lock().expect("connections lock");
            if o.conns.len() >= MAX_CONNECTIONS {
                if let Some((_, oldest)) = o.conns.pop_first() {
                    oldest.cancel();
                }
            }
            let id = o.next;
            o.next += 1;
            let close = stop.child_token();
            o.conns.insert(id, close.clone());
            (id, close)
        };
        let server = server.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_header_size(MAX_HEADER_BYTES)
                .max_buf_size(MAX_HEADER_BYTES.max(8192) + MAX_BODY)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_LIFETIME, conn) => {}
                () = close.cancelled() => {}
            }
            open.lock().expect("connections lock").conns.remove(&id);
        });
    }
}

#[cfg(test)]
mod tests;
