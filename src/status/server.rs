//! The HTTP edge of the status page: routes, the control buttons' guards,
//! and the server loop. What is shown is built in `snapshot`; what the
//! buttons do is the fleet task's (they send it a request).
//!
//! Read-only endpoints need nothing. The two buttons (POST `/spawn`, POST
//! `/leave`) are refused unless `status.control_token` is set and sent with
//! the request, refused from another origin, and rate-limited.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use super::board::{Board, Figures};
use super::counters::Counters;
use super::snapshot::{self, InstanceInfo, Liveness, Snapshot, WEDGED_AFTER};
use super::{metrics, page};
use crate::config::StatusConfig;
use crate::control::Task;
use crate::drain::occupancy::Occupancy;
use crate::fleet::{Refusal, Request as FleetRequest};

mod guards;
pub use guards::{cross_origin, form_token, Limiter};
use guards::{request_token, same_secret};

/// Open connections beyond this wait to be accepted (file descriptors are
/// the agent's, and jobs need them).
const MAX_CONNECTIONS: usize = 256;
/// A form post is a token and nothing else.
const MAX_BODY: usize = 4096;

/// How long a button press waits for the fleet task's answer (it may be
/// busy with an Auto Scaling call of its own).
const FLEET_ANSWER: Duration = Duration::from_secs(15);

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

    async fn button(&self, req: Request<Incoming>, path: &str) -> Reply {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let answer = |status: StatusCode, ok: bool, message: &str| {
            if form {
                let page = format!(
                    "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><meta http-equiv=refresh content=\"4;url=/\"><title>drainerd</title><p>{}</p><p><a href=/>back</a></p>",
                    page::esc(message)
                );
                reply(status, HTML, page)
            } else {
                let body = serde_json::json!({ "ok": ok, "message": message });
                reply(status, JSON, body.to_string())
            }
        };
        let Some(expected) = self.cfg.control_token.as_deref() else {
            return answer(
                StatusCode::FORBIDDEN,
                false,
                "buttons disabled: set status.control_token to enable them",
            );
        };
        if let Some(why) = cross_origin(req.headers()) {
            tracing::warn!(path, reason = %why, "status page: cross-origin button press refused");
            return answer(
                StatusCode::FORBIDDEN,
                false,
                &format!("cross-origin request refused: {why}"),
            );
        }
        if let Err(wait) = self.limiter.take() {
            let mut r = answer(
                StatusCode::TOO_MANY_REQUESTS,
                false,
                &format!(
                    "too many button presses; try again in {}s",
                    wait.as_secs() + 1
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs() + 1));
            return r;
        }
        let headers = req.headers().clone();
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(_) => {
                return answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    false,
                    "request body too large",
                )
            }
        };
        let token = request_token(&headers, &body);
        if !token.is_some_and(|t| same_secret(t.as_bytes(), expected.as_bytes())) {
            tracing::warn!(
                path,
                "status page: button press with a missing or wrong token refused"
            );
            return answer(
                StatusCode::FORBIDDEN,
                false,
                "missing or wrong control token",
            );
        }
        let Some(fleet) = &self.fleet else {
            return answer(
                StatusCode::CONFLICT,
                false,
                "this instance is in no known Auto Scaling group",
            );
        };
        let refused = |r: Refusal| match r {
            Refusal::Conflict(m) => answer(StatusCode::CONFLICT, false, &m),
            Refusal::Unavailable(m) => answer(StatusCode::BAD_GATEWAY, false, &m),
        };
        let asked = if path == "/spawn" {
            let (tx, rx) = oneshot::channel();
            ask(fleet, FleetRequest::Spawn(tx), rx)
                .await
                .map(|r| r.map(|n| format!("desired capacity is now {n}")))
        } else {
            let (tx, rx) = oneshot::channel();
            ask(fleet, FleetRequest::Leave(tx), rx).await.map(|r| {
                r.map(|()| {
                    tracing::warn!("status page: leave pressed; draining, then leaving the group");
                    "draining: no new work; running jobs finish, then this instance leaves its group (desired capacity −1)".to_string()
                })
            })
        };
        match asked {
            Ok(Ok(m)) if path == "/spawn" => answer(StatusCode::OK, true, &m),
            Ok(Ok(m)) => answer(StatusCode::ACCEPTED, true, &m),
            Ok(Err(r)) => refused(r),
            Err(why) => answer(StatusCode::CONFLICT, false, why),
        }
    }
}

/// Sends a request to the fleet task and waits (bounded) for its answer.
async fn ask<T>(
    fleet: &mpsc::Sender<FleetRequest>,
    request: FleetRequest,
    answer: oneshot::Receiver<Result<T, Refusal>>,
) -> Result<Result<T, Refusal>, &'static str> {
    const STOPPED: &str = "the fleet logic has stopped (already leaving?)";
    let sent = tokio::time::timeout(FLEET_ANSWER, fleet.send(request)).await;
    if !matches!(sent, Ok(Ok(()))) {
        return Err(STOPPED);
    }
    match tokio::time::timeout(FLEET_ANSWER, answer).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(_)) => Err(STOPPED),
        Err(_) => Err("the fleet task is busy (leaving?); try again shortly"),
    }
}

/// Binds `status.listen`. Failing to bind is logged by the caller; the
/// agent drains without its page.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(cfg: &StatusConfig) -> std::io::Result<TcpListener> {
    let addr: SocketAddr = cfg.addr();
    let listener = TcpListener::bind(addr).await?;
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

/// Serves until `stop`.
async fn serve(listener: TcpListener, server: Arc<Server>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
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
        let server = server.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests;
