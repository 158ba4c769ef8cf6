//! The page's guards: the Host allow-list (every request), and the
//! buttons' token (compared in constant time, read from a header or the
//! form), same-origin check and rate limiter; and the log of refusals,
//! which an attacker must not be able to flood.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use hyper::header::HeaderMap;
use tokio::time::Instant;

use crate::status::counters::Counters;

/// A token bucket: `per_minute` presses, refilled evenly.
pub struct Limiter {
    per_minute: u32,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    pub fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute,
            state: Mutex::new((f64::from(per_minute), Instant::now())),
        }
    }
    /// Takes one press, or says how long until one is available.
    pub fn take(&self) -> Result<(), Duration> {
        let mut s = self.state.lock().expect("limiter lock");
        let rate = f64::from(self.per_minute) / 60.0;
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * rate).min(f64::from(self.per_minute));
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - s.0) / rate))
        }
    }
}

/// Equal without telling how much of the prefix matched.
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes one `application/x-www-form-urlencoded` value.
fn form_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `token` field of a form body.
pub fn form_token(body: &str) -> Option<String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| form_decode(v))
}

/// Why a button press is refused before its token is looked at: a request
/// from another origin (a page elsewhere posting a form to this one).
pub fn cross_origin(headers: &HeaderMap) -> Option<String> {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Some(format!("Sec-Fetch-Site is {site}"));
        }
    }
    if let Some(origin) = get("origin") {
        let host = get("host").unwrap_or("");
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Some(format!("Origin {origin} is not this page ({host})"));
        }
    }
    None
}

/// The token a request carries: bearer, header, or (form posts) field.
pub(super) fn request_token(headers: &HeaderMap, body: &str) -> Option<String> {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .or_else(|| get("x-drainerd-token"))
        .map(str::to_string)
        .or_else(|| form_token(body))
}

/// The host a `Host` header names, lower-cased, without port or trailing
/// dot (`[::1]:9753` → `::1`). `None` for a header that names no host.
pub fn host_name(header: &str) -> Option<String> {
    let h = header.trim();
    let name = if let Some(rest) = h.strip_prefix('[') {
        rest.split_once(']')?.0
    } else {
        match h.rsplit_once(':') {
            Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) && !n.contains(':') => n,
            _ => h,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Whether a request naming `host` (its `Host` header, if any) is for this
/// page: `localhost`, a loopback address, the listen address (any address
/// when listening on all of them: an IP address cannot be rebound), or a
/// configured name. A request without `Host` comes from no browser.
pub fn host_allowed(host: Option<&str>, listen: SocketAddr, allowed: &[String]) -> bool {
    let Some(header) = host else {
        return true;
    };
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    let Some(name) = host_name(header) else {
        return false;
    };
    if name == "localhost" || allowed.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || listen.ip().is_unspecified() || ip == listen.ip(),
        Err(_) => false,
    }
}

/// Counts every refused request (`drainerd_status_refusals_total`) and
/// logs them at most once a minute, with how many went unlogged.
#[derive(Default)]
pub struct Refusals {
    last_logged: Mutex<Option<(Instant, u64)>>,
}

impl Refusals {
    pub fn refused(&self, counters: &Counters, reason: &'static str, detail: &str) {
        counters.page_refusals.add(reason, false);
        let detail: String = detail.chars().take(120).collect();
        let mut last = self.last_logged.lock().expect("refusals lock");
        let now = Instant::now();
        match &mut *last {
            Some((at, unlogged)) if now.duration_since(*at) < Duration::from_secs(60) => {
                *unlogged += 1;
            }
            _ => {
                let unlogged = last.map_or(0, |(_, n)| n);
                tracing::warn!(reason, detail, unlogged_since_last = unlogged, "status page: request refused (logged at most once a minute; all are counted in drainerd_status_refusals_total)");
                *last = Some((now, 0));
            }
        }
    }
}
