//! The two listeners: the metadata service (what the instance sees) and the
//! control API (what tests, the demo and people use to steer it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::state::{Faults, Instance, Sim};

pub type Shared = Arc<Mutex<Sim>>;

/// Bumped to drop every open metadata connection (clients keep connections
/// alive, so "going away" and "reset" must reach those too).
pub type Killer = tokio::sync::watch::Sender<u64>;

/// The metadata service on `addr`. Honors `down_until` by closing the
/// listener (connections refused) and reopening it later.
pub async fn serve_imds(
    addr: SocketAddr,
    sim: Shared,
    down: Arc<Mutex<Option<Instant>>>,
    killer: Arc<Killer>,
) -> std::io::Result<()> {
    let mut listener = Some(TcpListener::bind(addr).await?);
    loop {
        let until = *down.lock().expect("down lock");
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            listener = None;
            tokio::time::sleep_until(until.into()).await;
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => {
                listener = Some(TcpListener::bind(addr).await?);
                listener.as_ref().expect("just bound")
            }
        };
        let accepted = tokio::select! {
            a = l.accept() => a,
            () = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        let Ok((stream, _)) = accepted else { continue };
        let reset = {
            let s = sim.lock().expect("sim lock");
            s.faults.reset && s.faults.active_for("", Instant::now())
        };
        if reset {
            let _ = stream.set_zero_linger();
            drop(stream);
            continue;
        }
        let sim = sim.clone();
        let mut kill = killer.subscribe();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| imds_request(sim.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = kill.changed() => {}
            }
        });
    }
}

async fn imds_request(
    sim: Shared,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let headers = req.headers().clone();
    let get = move |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (mut reply, faults) = {
        let mut s = sim.lock().expect("sim lock");
        let reply = s.imds(&method, &path, &get, Instant::now());
        let faults = s
            .faults
            .active_for(&path, Instant::now())
            .then(|| s.faults.clone());
        (reply, faults)
    };
    if let Some(f) = faults.filter(|_| method == "GET") {
        if f.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
        }
        if let Some(status) = f.status {
            reply.status = status;
            reply.body = String::new();
        } else if f.garbage && reply.status != 401 {
            // A 200 with a body that is not what the path promises, even
            // where the item would be absent.
            reply.status = 200;
            reply.body = "{\"action\": \u{0}\u{7f}garbage[[[ \u{fffd}".into();
        }
    }
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(*k, v);
    }
    Ok(resp
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(reply.body)))
        .expect("valid response"))
}

/// The control API on `addr` (JSON in and out; see README).
pub async fn serve_control(
    addr: SocketAddr,
    sim: Shared,
    down: Arc<Mutex<Option<Instant>>>,
    killer: Arc<Killer>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (sim, down, killer) = (sim.clone(), down.clone(), killer.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                control_request(sim.clone(), down.clone(), killer.clone(), req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn parse_in(s: &Option<String>) -> Result<Option<Duration>, String> {
    s.as_deref()
        .map(|v| humantime::parse_duration(v).map_err(|e| format!("bad duration {v:?}: {e}")))
        .transpose()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[derive(Deserialize)]
struct SpotReq {
    #[serde(default = "default_action")]
    action: String,
    /// From now, e.g. "2m" (AWS gives two minutes).
    #[serde(rename = "in")]
    in_: Option<String>,
    /// Or an exact RFC 3339 time.
    time: Option<String>,
}
fn default_action() -> String {
    "terminate".into()
}

#[derive(Deserialize)]
struct LifecycleReq {
    state: String,
}

#[derive(Deserialize)]
struct InstanceReq {
    instance_id: Option<String>,
    region: Option<String>,
    availability_zone: Option<String>,
    instance_type: Option<String>,
    launch_time: Option<String>,
    /// Launch time as an age, e.g. "57m".
    launched_ago: Option<String>,
}

#[derive(Deserialize)]
struct FaultReq {
    #[serde(flatten)]
    faults: Faults,
    /// How long the faults last (default: until cleared).
    #[serde(rename = "for")]
    for_: Option<String>,
}

#[derive(Deserialize)]
struct DownReq {
    #[serde(rename = "for")]
    for_: String,
}

async fn control_request(
    sim: Shared,
    down: Arc<Mutex<Option<Instant>>>,
    killer: Arc<Killer>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let result = control(&sim, &down, &method, &path, &body);
    let drop_connections = {
        let s = sim.lock().expect("sim lock");
        s.faults.reset
            || down
                .lock()
                .expect("down lock")
                .is_some_and(|u| u > Instant::now())
    };
    if result.is_ok() && drop_connections {
        killer.send_modify(|g| *g += 1);
    }
    let (status, text) = match result {
        Ok(()) => (200, state_json(&sim, &down)),
        Err((status, msg)) => (status, serde_json::json!({ "error": msg }).to_string()),
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text + "\n")))
        .expect("valid response"))
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, (u16, String)> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| (400, format!("bad JSON body: {e}")))
}

fn control(
    sim: &Shared,
    down: &Mutex<Option<Instant>>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(), (u16, String)> {
    let now = SystemTime::now();
    let bad = |e: String| (400, e);
    let mut s = sim.lock().expect("sim lock");
    match (method, path) {
        ("GET", "/state") => {}
        ("POST", "/spot") => {
            let r: SpotReq = json(body)?;
            if !["terminate", "stop", "hibernate"].contains(&r.action.as_str()) {
                return Err(bad(format!(
                    "action {:?}: use terminate, stop or hibernate",
                    r.action
                )));
            }
            let time = match (r.time, parse_in(&r.in_).map_err(bad)?) {
                (Some(t), _) => t,
                (None, d) => rfc3339(now + d.unwrap_or(Duration::from_secs(120))),
            };
            s.spot = Some(serde_json::json!({ "action": r.action, "time": time }));
        }
        ("DELETE", "/spot") => s.spot = None,
        ("POST", "/rebalance") => {
            s.rebalance = Some(serde_json::json!({ "noticeTime": rfc3339(now) }))
        }
        ("DELETE", "/rebalance") => s.rebalance = None,
        ("POST", "/lifecycle") => s.lifecycle = Some(json::<LifecycleReq>(body)?.state),
        ("DELETE", "/lifecycle") => s.lifecycle = None,
        ("POST", "/maintenance") => s.maintenance = json(body)?,
        ("DELETE", "/maintenance") => s.maintenance.clear(),
        ("POST", "/instance") => {
            let r: InstanceReq = json(body)?;
            let i: &mut Instance = &mut s.instance;
            if let Some(v) = r.instance_id {
                i.instance_id = v;
            }
            if let Some(v) = r.region {
                i.region = v;
            }
            if let Some(v) = r.availability_zone {
                i.availability_zone = v;
            }
            if let Some(v) = r.instance_type {
                i.instance_type = v;
            }
            if let Some(v) = r.launch_time {
                i.launch_time = v;
            }
            if let Some(ago) = parse_in(&r.launched_ago).map_err(bad)? {
                i.launch_time = rfc3339(now - ago);
            }
        }
        ("PUT", "/user-data") => s.user_data = Some(String::from_utf8_lossy(body).into_owned()),
        ("DELETE", "/user-data") => s.user_data = None,
        ("POST", "/tags") => s.tags = json(body)?,
        ("POST", "/faults") => {
            let r: FaultReq = json(body)?;
            let mut f = r.faults;
            f.until = parse_in(&r.for_).map_err(bad)?.map(|d| Instant::now() + d);
            s.faults = f;
        }
        ("DELETE", "/faults") => s.faults = Faults::default(),
        ("POST", "/down") => {
            let d = parse_in(&Some(json::<DownReq>(body)?.for_))
                .map_err(bad)?
                .unwrap_or_default();
            *down.lock().expect("down lock") = Some(Instant::now() + d);
        }
        ("POST", "/reset") => {
            let inst = s.instance.clone();
            *s = Sim::default();
            s.instance = inst;
            *down.lock().expect("down lock") = None;
        }
        _ => {
            return Err((
                404,
                format!("no control endpoint {method} {path}; see imds-sim --help"),
            ))
        }
    }
    Ok(())
}

fn state_json(sim: &Shared, down: &Mutex<Option<Instant>>) -> String {
    let s = sim.lock().expect("sim lock");
    let down_for = down
        .lock()
        .expect("down lock")
        .and_then(|u| u.checked_duration_since(Instant::now()));
    serde_json::to_string_pretty(&serde_json::json!({
        "instance": s.instance,
        "user_data": s.user_data,
        "tags": s.tags,
        "spot": s.spot,
        "rebalance": s.rebalance,
        "lifecycle": s.lifecycle,
        "maintenance": s.maintenance,
        "faults": s.faults,
        "down_for_seconds": down_for.map(|d| d.as_secs_f64()),
        "requests": s.requests,
    }))
    .unwrap_or_default()
}
