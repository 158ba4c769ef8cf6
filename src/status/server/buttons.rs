//! The two buttons (POST `/spawn`, POST `/leave`): their guards in order
//! (token configured, same origin, the token itself, the rate limit), then
//! the fleet task's answer.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use tokio::sync::{mpsc, oneshot};

use super::guards::{cross_origin, form_token, request_token, same_secret};
use super::{page, reply, Reply, Server, BODY_TIMEOUT, HTML, JSON, MAX_BODY};
use crate::fleet::{Refusal, Request as FleetRequest};

/// How long a button press waits for the fleet task's answer (it may be
/// busy with an Auto Scaling call of its own).
const FLEET_ANSWER: Duration = Duration::from_secs(15);

impl Server {
    pub(super) async fn button(&self, req: Request<Incoming>, path: &str) -> Reply {
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
        let Some(expected) = self.cfg.control_token.as_ref().map(|t| t.expose()) else {
            return answer(
                StatusCode::FORBIDDEN,
                false,
                "buttons disabled: set status.control_token to enable them",
            );
        };
        if let Some(why) = cross_origin(req.headers()) {
            self.refusals.refused(&self.counters, "origin", &why);
            return answer(
                StatusCode::FORBIDDEN,
                false,
                &format!("cross-origin request refused: {why}"),
            );
        }
        // The token first (from a header, else the form body, read within
        // bounds): a press without it must not spend the rate limit.
        let headers = req.headers().clone();
        let token = match request_token(&headers, "") {
            Some(t) => Some(t),
            None => {
                let body = Limited::new(req.into_body(), MAX_BODY).collect();
                match tokio::time::timeout(BODY_TIMEOUT, body).await {
                    Ok(Ok(b)) => form_token(&String::from_utf8_lossy(&b.to_bytes())),
                    Ok(Err(_)) => {
                        self.refusals.refused(&self.counters, "body", "too large");
                        return answer(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            false,
                            "request body too large",
                        );
                    }
                    Err(_) => {
                        self.refusals.refused(&self.counters, "body", "too slow");
                        return answer(StatusCode::REQUEST_TIMEOUT, false, "request body too slow");
                    }
                }
            }
        };
        if !token.is_some_and(|t| same_secret(t.as_bytes(), expected.as_bytes())) {
            self.refusals.refused(&self.counters, "token", path);
            return answer(
                StatusCode::FORBIDDEN,
                false,
                "missing or wrong control token",
            );
        }
        if let Err(wait) = self.limiter.take() {
            self.refusals.refused(&self.counters, "rate", path);
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
