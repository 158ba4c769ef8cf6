//! What the simulated instance is and what its metadata service answers.
//!
//! Pure: given the state, a method, a path and headers, [`Sim::imds`]
//! returns the response IMDSv2 would give (status, body, headers). Behaviour
//! follows the EC2 user guide: a token from `PUT /latest/api/token` with a
//! TTL of 1..=21600 s; every GET needs a valid token (401 otherwise); 404
//! for an item that is not present; 403 for a token PUT carrying
//! `X-Forwarded-For`. Like IMDS, every path is also served under a dated
//! API version (`/2009-04-04/meta-data/...`) and a category answers with a
//! listing of what is in it: cloud-init's Ec2 datasource reads metadata
//! that way.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

pub const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

/// Who the instance is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    pub instance_type: String,
    pub image_id: String,
    pub account_id: String,
    /// RFC 3339; the identity document's `pendingTime`.
    pub launch_time: String,
}

impl Default for Instance {
    fn default() -> Self {
        Instance {
            instance_id: "i-0123456789abcdef0".into(),
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            instance_type: "m5.large".into(),
            image_id: "ami-0abcdef1234567890".into(),
            account_id: "123456789012".into(),
            launch_time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }
    }
}

/// Injected misbehaviour, applied to metadata GETs whose path starts with
/// `path_prefix` (all when empty), until `until`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Delay before answering, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Answer with this status instead (e.g. 500, 503).
    #[serde(default)]
    pub status: Option<u16>,
    /// Answer 401 to every GET, whatever the token ("401 storm").
    #[serde(default)]
    pub unauthorized: bool,
    /// Answer 200 with bytes that are not what the path promises.
    #[serde(default)]
    pub garbage: bool,
    /// Close connections without answering.
    #[serde(default)]
    pub reset: bool,
    #[serde(default)]
    pub path_prefix: String,
    #[serde(skip)]
    pub until: Option<Instant>,
}

impl Faults {
    pub fn active_for(&self, path: &str, now: Instant) -> bool {
        self.until.is_none_or(|u| now < u) && path.starts_with(&self.path_prefix)
    }
}

/// A response from the simulated service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }
}

/// The whole simulated instance.
#[derive(Debug, Default)]
pub struct Sim {
    pub instance: Instance,
    pub user_data: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// `spot/instance-action` body, when an interruption is scheduled.
    pub spot: Option<serde_json::Value>,
    /// `events/recommendations/rebalance` body.
    pub rebalance: Option<serde_json::Value>,
    /// `autoscaling/target-lifecycle-state` (404 when unset).
    pub lifecycle: Option<String>,
    /// `events/maintenance/scheduled` (an empty array when none).
    pub maintenance: Vec<serde_json::Value>,
    pub faults: Faults,
    tokens: HashMap<String, Instant>,
    pub requests: BTreeMap<String, u64>,
}

impl Sim {
    /// Answers one metadata request at `now`.
    pub fn imds(
        &mut self,
        method: &str,
        path: &str,
        headers: &dyn Fn(&str) -> Option<String>,
        now: Instant,
    ) -> Reply {
        *self.requests.entry(format!("{method} {path}")).or_default() += 1;
        if path == "/latest/api/token" {
            return self.token(method, headers, now);
        }
        if method != "GET" {
            return Reply::new(405, "");
        }
        let token_ok = headers(TOKEN_HEADER)
            .and_then(|t| self.tokens.get(&t).copied())
            .is_some_and(|exp| now < exp);
        if !token_ok || (self.faults.unauthorized && self.faults.active_for(path, now)) {
            return Reply::new(401, "");
        }
        let path = as_latest(path);
        match self.listing(&path).or_else(|| self.item(&path)) {
            Some(body) => Reply::new(200, body),
            None => Reply::new(404, ""),
        }
    }

    fn token(
        &mut self,
        method: &str,
        headers: &dyn Fn(&str) -> Option<String>,
        now: Instant,
    ) -> Reply {
        if method != "PUT" {
            return Reply::new(405, "");
        }
        if headers("x-forwarded-for").is_some() {
            return Reply::new(403, "");
        }
        let Some(ttl) = headers(TTL_HEADER).and_then(|v| v.trim().parse::<u64>().ok()) else {
            return Reply::new(400, "");
        };
        if !(1..=21_600).contains(&ttl) {
            return Reply::new(400, "");
        }
        self.tokens.retain(|_, exp| *exp > now);
        let token = format!("sim-{:032x}", fastrand::u128(..));
        self.tokens
            .insert(token.clone(), now + Duration::from_secs(ttl));
        let mut r = Reply::new(200, token);
        r.headers.push((TTL_HEADER, ttl.to_string()));
        r
    }

    /// A category's listing, as IMDS answers it: one entry a line,
    /// sub-categories with a trailing `/`, only what is present.
    fn listing(&self, path: &str) -> Option<String> {
        let dir = path.strip_prefix("/latest")?.trim_end_matches('/');
        let entries = match dir {
            "" if self.user_data.is_some() => vec!["dynamic", "meta-data", "user-data"],
            "" => vec!["dynamic", "meta-data"],
            "/meta-data" => {
                let mut v = vec![
                    "ami-id",
                    "events/",
                    "iam/",
                    "instance-id",
                    "instance-type",
                    "placement/",
                ];
                let present = [
                    (self.lifecycle.is_some(), "autoscaling/"),
                    (self.spot.is_some(), "spot/"),
                    (!self.tags.is_empty(), "tags/"),
                ];
                v.extend(present.iter().filter(|(p, _)| *p).map(|(_, e)| *e));
                v.sort_unstable();
                v
            }
            "/meta-data/placement" => vec!["availability-zone", "region"],
            "/meta-data/events" if self.rebalance.is_some() => {
                vec!["maintenance/", "recommendations/"]
            }
            "/meta-data/events" => vec!["maintenance/"],
            "/meta-data/events/maintenance" => vec!["scheduled"],
            "/meta-data/events/recommendations" if self.rebalance.is_some() => vec!["rebalance"],
            "/meta-data/spot" if self.spot.is_some() => vec!["instance-action"],
            "/meta-data/autoscaling" if self.lifecycle.is_some() => vec!["target-lifecycle-state"],
            "/meta-data/iam" => vec!["security-credentials/"],
            "/meta-data/tags" if !self.tags.is_empty() => vec!["instance"],
            "/dynamic" => vec!["instance-identity/"],
            "/dynamic/instance-identity" => vec!["document"],
            _ => return None,
        };
        Some(entries.join("\n"))
    }

    fn item(&self, path: &str) -> Option<String> {
        let i = &self.instance;
        let md = path.strip_prefix("/latest/meta-data/");
        Some(match (path, md) {
            ("/latest/user-data", _) => self.user_data.clone()?,
            ("/latest/dynamic/instance-identity/document", _) => serde_json::to_string_pretty(&serde_json::json!({
                "accountId": i.account_id,
                "architecture": "x86_64",
                "availabilityZone": i.availability_zone,
                "imageId": i.image_id,
                "instanceId": i.instance_id,
                "instanceType": i.instance_type,
                "pendingTime": i.launch_time,
                "privateIp": "10.0.0.10",
                "region": i.region,
                "version": "2017-09-30",
            }))
            .ok()?,
            (_, Some("instance-id")) => i.instance_id.clone(),
            (_, Some("instance-type")) => i.instance_type.clone(),
            (_, Some("ami-id")) => i.image_id.clone(),
            (_, Some("placement/region")) => i.region.clone(),
            (_, Some("placement/availability-zone")) => i.availability_zone.clone(),
            (_, Some("spot/instance-action")) => self.spot.as_ref()?.to_string(),
            (_, Some("events/recommendations/rebalance")) => self.rebalance.as_ref()?.to_string(),
            (_, Some("autoscaling/target-lifecycle-state")) => self.lifecycle.clone()?,
            (_, Some("events/maintenance/scheduled")) => serde_json::Value::from(self.maintenance.clone()).to_string(),
            (_, Some("tags/instance") | Some("tags/instance/")) if !self.tags.is_empty() => {
                self.tags.keys().cloned().collect::<Vec<_>>().join("\n")
            }
            (_, Some(p)) if p.starts_with("tags/instance/") => self.tags.get(&p["tags/instance/".len()..])?.clone(),
            // An instance profile, so SDKs on the instance find credentials.
            (_, Some("iam/security-credentials/" | "iam/security-credentials")) => "drainerd-sim".into(),
            (_, Some("iam/security-credentials/drainerd-sim")) => serde_json::json!({
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": "test",
                "SecretAccessKey": "test",
                "Token": "test",
                "LastUpdated": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                "Expiration": humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(6 * 3600)).to_string(),
            })
            .to_string(),
            _ => return None,
        })
    }
}

/// IMDS serves each API version under its date as well as under
/// `/latest/` (cloud-init asks for `/2009-04-04/...` and newer dates); this
/// maps a dated path to its `/latest/` form.
fn as_latest(path: &str) -> std::borrow::Cow<'_, str> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (version, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let b = version.as_bytes();
    let dated = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if dated {
        format!("/latest/{tail}").into()
    } else {
        path.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn imdsv2_token_rules() {
        let mut sim = Sim::default();
        let now = Instant::now();
        assert_eq!(
            sim.imds("GET", "/latest/meta-data/instance-id", &hdrs(&[]), now)
                .status,
            401
        );
        assert_eq!(
            sim.imds("PUT", "/latest/api/token", &hdrs(&[]), now).status,
            400
        );
        assert_eq!(
            sim.imds("PUT", "/latest/api/token", &hdrs(&[(TTL_HEADER, "0")]), now)
                .status,
            400
        );
        assert_eq!(
            sim.imds(
                "PUT",
                "/latest/api/token",
                &hdrs(&[(TTL_HEADER, "60"), ("x-forwarded-for", "1.2.3.4")]),
                now
            )
            .status,
            403
        );
        let t = sim.imds(
            "PUT",
            "/latest/api/token",
            &hdrs(&[(TTL_HEADER, "60")]),
            now,
        );
        assert_eq!(t.status, 200);
        assert_eq!(t.headers, vec![(TTL_HEADER, "60".to_string())]);
        let auth = hdrs(&[(TOKEN_HEADER, t.body.as_str())]);
        let id = sim.imds("GET", "/latest/meta-data/instance-id", &auth, now);
        assert_eq!((id.status, id.body.as_str()), (200, "i-0123456789abcdef0"));
        assert_eq!(
            sim.imds("GET", "/latest/meta-data/spot/instance-action", &auth, now)
                .status,
            404
        );
        // Expired token.
        let later = now + Duration::from_secs(61);
        assert_eq!(
            sim.imds("GET", "/latest/meta-data/instance-id", &auth, later)
                .status,
            401
        );
    }

    #[test]
    fn dated_versions_and_listings_as_cloud_init_reads_them() {
        let mut sim = Sim::default();
        let now = Instant::now();
        let t = sim.imds(
            "PUT",
            "/latest/api/token",
            &hdrs(&[(TTL_HEADER, "60")]),
            now,
        );
        let auth = hdrs(&[(TOKEN_HEADER, t.body.as_str())]);
        let get = |sim: &mut Sim, p: &str| {
            let r = sim.imds("GET", p, &auth, now);
            (r.status, r.body)
        };
        assert_eq!(
            get(&mut sim, "/2009-04-04/meta-data/instance-id"),
            (200, "i-0123456789abcdef0".to_string())
        );
        let (status, md) = get(&mut sim, "/2021-03-23/meta-data/");
        assert_eq!(status, 200);
        let md: Vec<&str> = md.lines().collect();
        assert!(md.contains(&"instance-id") && md.contains(&"placement/"));
        assert!(!md.contains(&"spot/"), "no spot/ without a notice");
        assert_eq!(
            get(&mut sim, "/2009-04-04/dynamic/instance-identity"),
            (200, "document".to_string())
        );
        assert_eq!(get(&mut sim, "/2009-04-04/user-data").0, 404);
        sim.user_data = Some("#cloud-config\n".into());
        assert_eq!(
            get(&mut sim, "/2009-04-04/user-data"),
            (200, "#cloud-config\n".to_string())
        );
        assert_eq!(get(&mut sim, "/1.0/meta-data/instance-id").0, 404);
        sim.spot = Some(serde_json::json!({"action": "terminate"}));
        assert!(get(&mut sim, "/latest/meta-data").1.contains("spot/"));
    }
}
