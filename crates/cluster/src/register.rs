//! The body of `POST /api/v1/srs/register`, as SRS's heartbeat sends it (docs/design.md §3):
//! [`RegisterBody`] is what an origin sends, [`parse_register`] what the proxy reads.
//!
//! Validation choices: `ip` must be an IP address other than a wildcard (`0.0.0.0`, `::`) or a
//! host name (dot-separated labels of ASCII letters, digits, `-`, `_`; at most 253 bytes), since
//! it is dialled. `server`, `service` and `pid` must be non-empty, at most 256 bytes, without `/`
//! (they are joined with `/` into the id) or control characters. `pid` may be a JSON string or a
//! non-negative integer; every other field must have exactly its type (`null` counts as absent).

use serde::Deserialize;
use serde_json::Value;

use crate::endpoint::{is_host_name, Endpoint};
use crate::protocol::Protocol;

/// Largest register body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// Longest `server`, `service`, `pid` or `device_id` accepted, in bytes.
const MAX_IDENT: usize = 256;

/// Why a register body was refused (docs/design.md §3: "a 4xx with a message that says what is
/// wrong").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The body is longer than [`MAX_BODY`]; the payload is its length in bytes.
    #[error("body is {0} bytes; the limit is {MAX_BODY} bytes")]
    TooLarge(usize),
    /// The body is not JSON; the payload is serde_json's message (with line and column).
    #[error("body is not valid JSON: {0}")]
    Json(String),
    /// The body is JSON but not an object; the payload names what it is (e.g. "an array").
    #[error("body must be a JSON object, got {0}")]
    NotObject(&'static str),
    /// One field is missing or wrong.
    #[error("field `{field}`: {reason}")]
    Field {
        /// The JSON field name, e.g. `rtmp`.
        field: &'static str,
        /// What is wrong with it, e.g. "expected a non-empty array of endpoint strings".
        reason: String,
    },
}

/// A registered origin (docs/design.md §3): what the store keeps and the proxy dials.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OriginInfo {
    /// `server/service/pid`: the identity; a new `service` or `pid` means the origin restarted.
    pub id: String,
    /// SRS's `device_id`, informational.
    pub device_id: Option<String>,
    /// The address endpoints without their own host resolve to (IP literal or host name).
    pub ip: String,
    /// SRS's server id, stable across restarts of one origin.
    pub server: String,
    /// SRS's service id, new at every start.
    pub service: String,
    /// The origin's process id, as text.
    pub pid: String,
    /// RTMP endpoints, resolved `host:port`; never empty.
    pub rtmp: Vec<String>,
    /// HTTP stream endpoints (FLV, TS, HLS), resolved `host:port`.
    pub http: Vec<String>,
    /// HTTP API endpoints (WHIP/WHEP), resolved `host:port`.
    pub api: Vec<String>,
    /// SRT (UDP) endpoints, resolved `host:port`.
    pub srt: Vec<String>,
    /// WebRTC media (UDP) endpoints, resolved `host:port`.
    pub rtc: Vec<String>,
    /// Load per CPU from the heartbeat's `summaries` (`system.load_1m / system.cpus`); `None`
    /// when the origin sends none, which the choice treats as below any limit (docs/design.md §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
}

impl OriginInfo {
    /// An origin with identity `server/service/pid` at `ip` and no endpoints yet: set its
    /// endpoint lists (resolved `host:port` strings) before use; a registered origin always has
    /// an `rtmp` one.
    pub fn new(ip: &str, server: &str, service: &str, pid: &str) -> OriginInfo {
        OriginInfo {
            id: format!("{server}/{service}/{pid}"),
            device_id: None,
            ip: ip.to_string(),
            server: server.to_string(),
            service: service.to_string(),
            pid: pid.to_string(),
            rtmp: Vec::new(),
            http: Vec::new(),
            api: Vec::new(),
            srt: Vec::new(),
            rtc: Vec::new(),
            load: None,
        }
    }

    /// The first address serving `protocol` (for [`Protocol::Rtc`], the WebRTC media address;
    /// see [`OriginInfo::api_addr`] for the signalling one), if any.
    pub fn endpoint(&self, protocol: Protocol) -> Option<&str> {
        let list = match protocol {
            Protocol::Rtmp => &self.rtmp,
            Protocol::Http => &self.http,
            Protocol::Srt => &self.srt,
            Protocol::Rtc => &self.rtc,
        };
        list.first().map(String::as_str)
    }

    /// Whether the origin can serve `protocol` (docs/design.md §5); WebRTC needs both `api` and
    /// `rtc`.
    pub fn has(&self, protocol: Protocol) -> bool {
        self.endpoint(protocol).is_some()
            && (protocol != Protocol::Rtc || self.api_addr().is_some())
    }

    /// The first HTTP API address (WHIP/WHEP signalling), if any.
    pub fn api_addr(&self) -> Option<&str> {
        self.api.first().map(String::as_str)
    }
}

/// The register body an origin POSTs with every heartbeat (docs/design.md §3), in the JSON form
/// of SRS's `heartbeat { ports on; }`; [`parse_register`] reads it back into an [`OriginInfo`].
///
/// Endpoint strings take any form [`Endpoint::parse`] accepts: a port (`1935`), `host:port`, or
/// `udp://0.0.0.0:8001`; an endpoint without a host (or a wildcard one) means `ip`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RegisterBody {
    /// SRS's `device_id`, informational; omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The address endpoints without their own host resolve to: an IP address (not a wildcard)
    /// or a host name.
    pub ip: String,
    /// Server id, stable across restarts of one origin.
    pub server: String,
    /// Service id, new at every start.
    pub service: String,
    /// Process id, as text.
    pub pid: String,
    /// RTMP endpoints; [`parse_register`] requires at least one. Omitted when empty, as are the
    /// other lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rtmp: Vec<String>,
    /// HTTP stream endpoints (FLV, TS, HLS).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<String>,
    /// HTTP API endpoints (WHIP/WHEP signalling).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<String>,
    /// SRT endpoints (UDP), e.g. `udp://0.0.0.0:10080`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub srt: Vec<String>,
    /// WebRTC media endpoints (UDP), e.g. `udp://0.0.0.0:8000`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rtc: Vec<String>,
    /// The machine's load, in the shape of SRS's `heartbeat { summaries on; }`; omitted when
    /// `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summaries: Option<Summaries>,
}

/// The part of SRS's `summaries` (`/api/v1/summaries`) the proxy reads:
/// `{"data":{"system":{"load_1m":…,"cpus":…}}}`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summaries {
    /// SRS's `data` object.
    pub data: SummaryData,
}

/// SRS's `summaries.data`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SummaryData {
    /// SRS's `summaries.data.system`.
    pub system: SystemSummary,
}

/// SRS's `summaries.data.system`, the fields the load is computed from.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SystemSummary {
    /// One-minute load average (`/proc/loadavg`'s first figure).
    pub load_1m: f64,
    /// Number of CPUs.
    pub cpus: u32,
}

impl Summaries {
    /// Summaries carrying `load_1m` over `cpus` CPUs.
    pub fn new(load_1m: f64, cpus: u32) -> Summaries {
        Summaries {
            data: SummaryData {
                system: SystemSummary { load_1m, cpus },
            },
        }
    }
}

/// The fields of [`RegisterBody`], untyped so each can be checked with a message naming it
/// (`pid` may also be a number, as some SRS versions send it).
#[derive(Deserialize)]
struct RawRegister {
    ip: Option<Value>,
    server: Option<Value>,
    service: Option<Value>,
    pid: Option<Value>,
    device_id: Option<Value>,
    rtmp: Option<Value>,
    http: Option<Value>,
    api: Option<Value>,
    srt: Option<Value>,
    rtc: Option<Value>,
    summaries: Option<Value>,
}

/// Parses and validates a register body ([`RegisterBody`], docs/design.md §3) into an
/// [`OriginInfo`] whose endpoints are resolved against `ip`, with the load per CPU read from
/// `summaries` when it carries one ([`summary_load`]). Unknown fields are ignored.
///
/// Errors: [`RegisterError`]; for a field, its Display names the field and the problem.
pub fn parse_register(body: &[u8]) -> Result<OriginInfo, RegisterError> {
    if body.len() > MAX_BODY {
        return Err(RegisterError::TooLarge(body.len()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RegisterError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(RegisterError::NotObject(json_type(&value)));
    }
    let raw = RawRegister::deserialize(value).map_err(|e| RegisterError::Json(e.to_string()))?;

    let ip = required_str("ip", raw.ip)?;
    let ip_ok = match ip.parse::<std::net::IpAddr>() {
        Ok(addr) => !addr.is_unspecified(),
        Err(_) => is_host_name(&ip),
    };
    if !ip_ok {
        return Err(field_err(
            "ip",
            "expected a dialable IP address or host name",
        ));
    }
    let server = ident("server", raw.server)?;
    let service = ident("service", raw.service)?;
    let pid = match raw.pid {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) => n.to_string(),
            None => {
                return Err(field_err(
                    "pid",
                    "expected a non-negative integer or a string",
                ))
            }
        },
        other => ident("pid", other)?,
    };
    let device_id = match raw.device_id {
        None => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(v) => Some(check_ident("device_id", expect_str("device_id", v)?)?),
    };

    let rtmp = endpoints("rtmp", raw.rtmp, &ip)?;
    if rtmp.is_empty() {
        return Err(field_err("rtmp", ENDPOINTS_REQUIRED));
    }
    Ok(OriginInfo {
        id: format!("{server}/{service}/{pid}"),
        device_id,
        rtmp,
        http: endpoints("http", raw.http, &ip)?,
        api: endpoints("api", raw.api, &ip)?,
        srt: endpoints("srt", raw.srt, &ip)?,
        rtc: endpoints("rtc", raw.rtc, &ip)?,
        load: raw.summaries.as_ref().and_then(summary_load),
        ip,
        server,
        service,
        pid,
    })
}

/// The load per CPU in SRS's `summaries`: `data.system.load_1m / data.system.cpus`. `None` when
/// either is missing, not a finite non-negative number, or `cpus` is 0: the summaries are
/// advisory, so a malformed one does not refuse the heartbeat (docs/design.md §3).
fn summary_load(summaries: &Value) -> Option<f64> {
    let system = summaries.pointer("/data/system")?;
    let load = system.get("load_1m")?.as_f64()?;
    let cpus = system.get("cpus")?.as_u64().filter(|&n| n > 0)?;
    (load.is_finite() && load >= 0.0).then(|| load / cpus as f64)
}

const ENDPOINTS_REQUIRED: &str = "expected a non-empty array of endpoint strings";

fn field_err(field: &'static str, reason: impl Into<String>) -> RegisterError {
    RegisterError::Field {
        field,
        reason: reason.into(),
    }
}

/// "a string", "an array", ... for messages.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect_str(field: &'static str, v: Value) -> Result<String, RegisterError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(field_err(
            field,
            format!("expected a string, got {}", json_type(&other)),
        )),
    }
}

/// A required, non-empty string field.
fn required_str(field: &'static str, v: Option<Value>) -> Result<String, RegisterError> {
    let s = expect_str(
        field,
        v.ok_or_else(|| field_err(field, "missing (required)"))?,
    )?;
    if s.is_empty() {
        return Err(field_err(field, "must not be empty"));
    }
    Ok(s)
}

/// A required identity part: see the module docs for the rules.
fn ident(field: &'static str, v: Option<Value>) -> Result<String, RegisterError> {
    check_ident(field, required_str(field, v)?)
}

fn check_ident(field: &'static str, s: String) -> Result<String, RegisterError> {
    if s.len() > MAX_IDENT {
        return Err(field_err(field, format!("longer than {MAX_IDENT} bytes")));
    }
    if s.chars().any(|c| c == '/' || c.is_control()) {
        return Err(field_err(
            field,
            "must not contain `/` or control characters",
        ));
    }
    Ok(s)
}

/// An optional array of endpoint strings, each parsed and resolved against `ip`.
fn endpoints(
    field: &'static str,
    v: Option<Value>,
    ip: &str,
) -> Result<Vec<String>, RegisterError> {
    let items = match v {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(field_err(
                field,
                format!(
                    "expected an array of endpoint strings, got {}",
                    json_type(&other)
                ),
            ))
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Endpoint::parse(&s)
                .map(|ep| ep.resolve(ip))
                .map_err(|e| field_err(field, format!("element {i}: {e}"))),
            other => Err(field_err(
                field,
                format!("element {i}: expected a string, got {}", json_type(&other)),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_BODY: &str = r#"{"device_id":"origin2","ip":"10.78.122.184","server":"vid-46p14mm","service":"z2s3w865",
 "pid":"42583","rtmp":["19352"],"http":["8082"],"api":["19853"],
 "srt":["udp://0.0.0.0:10082"],"rtc":["udp://0.0.0.0:8001"]}"#;

    fn body_without(field: &str) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(DOC_BODY).unwrap();
        v.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&v).unwrap()
    }

    fn body_with(field: &str, value: Value) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(DOC_BODY).unwrap();
        v.as_object_mut().unwrap().insert(field.into(), value);
        serde_json::to_vec(&v).unwrap()
    }

    fn field_of(err: RegisterError) -> &'static str {
        match err {
            RegisterError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn design_example_parses() {
        let info = parse_register(DOC_BODY.as_bytes()).unwrap();
        assert_eq!(info.id, "vid-46p14mm/z2s3w865/42583");
        assert_eq!(info.device_id.as_deref(), Some("origin2"));
        assert_eq!(info.rtmp, ["10.78.122.184:19352"]);
        assert_eq!(info.http, ["10.78.122.184:8082"]);
        assert_eq!(info.api, ["10.78.122.184:19853"]);
        assert_eq!(info.srt, ["10.78.122.184:10082"]);
        assert_eq!(info.rtc, ["10.78.122.184:8001"]);
        assert_eq!(info.endpoint(Protocol::Rtc), Some("10.78.122.184:8001"));
        assert_eq!(info.api_addr(), Some("10.78.122.184:19853"));
        for p in [Protocol::Rtmp, Protocol::Http, Protocol::Srt, Protocol::Rtc] {
            assert!(info.has(p), "{p}");
        }
    }

    #[test]
    fn minimal_body_and_capabilities() {
        let body = br#"{"ip":"10.0.0.1","server":"s","service":"v","pid":"1","rtmp":["tcp://10.0.0.9:1935"],"rtc":["8000"],"api":null}"#;
        let info = parse_register(body).unwrap();
        assert_eq!(info.rtmp, ["10.0.0.9:1935"]);
        assert!(info.http.is_empty() && info.api.is_empty() && info.device_id.is_none());
        assert!(info.has(Protocol::Rtmp));
        assert!(!info.has(Protocol::Http));
        assert!(!info.has(Protocol::Srt));
        // rtc alone is not enough for WebRTC: signalling needs the api.
        assert!(!info.has(Protocol::Rtc));
    }

    #[test]
    fn each_required_field_missing() {
        for field in ["ip", "server", "service", "pid", "rtmp"] {
            let err = parse_register(&body_without(field)).unwrap_err();
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
            assert_eq!(field_of(err), field);
        }
        for optional in ["device_id", "http", "api", "srt", "rtc"] {
            assert!(
                parse_register(&body_without(optional)).is_ok(),
                "{optional}"
            );
        }
    }

    #[test]
    fn wrong_types_and_empty_values() {
        let cases = [
            ("rtmp", Value::from("1935")),
            ("rtmp", serde_json::json!([])),
            ("rtmp", serde_json::json!([1935])),
            ("rtmp", serde_json::json!(["0"])),
            ("ip", Value::from(5)),
            ("ip", Value::from("")),
            ("ip", Value::from("0.0.0.0")),
            ("ip", Value::from("not an ip")),
            ("server", Value::from("a/b")),
            ("service", Value::Bool(true)),
            ("pid", Value::from(-3)),
            ("pid", Value::from(1.5)),
            ("pid", Value::from("")),
            ("http", Value::from("8080")),
            ("srt", serde_json::json!(["http://x:1"])),
            ("device_id", Value::from(7)),
        ];
        for (field, value) in cases {
            let err = parse_register(&body_with(field, value.clone())).unwrap_err();
            assert_eq!(field_of(err), field, "{field} = {value}");
        }
        let err = parse_register(&body_with("rtmp", Value::from("1935"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `rtmp`: expected an array of endpoint strings, got a string"
        );
        let err = parse_register(&body_with("rtmp", serde_json::json!([]))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `rtmp`: expected a non-empty array of endpoint strings"
        );
        let err = parse_register(&body_with("ip", Value::from(5))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `ip`: expected a string, got a number"
        );
    }

    #[test]
    fn lenient_where_documented() {
        let info = parse_register(&body_with("pid", Value::from(42583))).unwrap();
        assert_eq!(info.pid, "42583");
        assert_eq!(info.id, "vid-46p14mm/z2s3w865/42583");
        let info = parse_register(&body_with(
            "summaries",
            serde_json::json!({"ok": true, "data": {"cpu": 1}}),
        ))
        .unwrap();
        assert_eq!(info.server, "vid-46p14mm");
        assert_eq!(info.load, None, "summaries without data.system");
        let info = parse_register(&body_with("ip", Value::from("fd00::7"))).unwrap();
        assert_eq!(info.srt, ["[fd00::7]:10082"]);
        let info = parse_register(&body_with("ip", Value::from("origin-1.internal"))).unwrap();
        assert_eq!(info.rtmp, ["origin-1.internal:19352"]);
    }

    #[test]
    fn register_body_round_trips() {
        let body = RegisterBody {
            device_id: Some("origin2".into()),
            ip: "10.0.0.7".into(),
            server: "vid-x".into(),
            service: "svc".into(),
            pid: "42".into(),
            rtmp: vec!["1935".into()],
            http: vec!["tcp://10.0.0.8:8080".into()],
            api: vec!["1985".into()],
            srt: vec!["udp://0.0.0.0:10080".into()],
            rtc: vec!["udp://0.0.0.0:8000".into(), "[fd00::1]:8001".into()],
            summaries: Some(Summaries::new(3.0, 4)),
        };
        let json = serde_json::to_vec(&body).unwrap();
        let info = parse_register(&json).unwrap();
        let expected = OriginInfo {
            id: "vid-x/svc/42".into(),
            device_id: Some("origin2".into()),
            ip: "10.0.0.7".into(),
            server: "vid-x".into(),
            service: "svc".into(),
            pid: "42".into(),
            rtmp: vec!["10.0.0.7:1935".into()],
            http: vec!["10.0.0.8:8080".into()],
            api: vec!["10.0.0.7:1985".into()],
            srt: vec!["10.0.0.7:10080".into()],
            rtc: vec!["10.0.0.7:8000".into(), "[fd00::1]:8001".into()],
            load: Some(0.75),
        };
        assert_eq!(info, expected);
        for p in [Protocol::Rtmp, Protocol::Http, Protocol::Srt, Protocol::Rtc] {
            assert!(info.has(p), "{p}");
        }
    }

    #[test]
    fn load_per_cpu_from_srs_summaries() {
        // The shape SRS's `heartbeat { summaries on; }` sends (abridged).
        let srs = serde_json::json!({"data": {"ok": true, "now_ms": 1,
            "self": {"cpu_percent": 12.5, "pid": 7},
            "system": {"cpu_percent": 0.4, "load_1m": 1.5, "load_5m": 1.0, "cpus": 2, "cpus_online": 2}}});
        let info = parse_register(&body_with("summaries", srs)).unwrap();
        assert_eq!(info.load, Some(0.75));
        // Advisory: a malformed figure leaves the load unknown, the heartbeat accepted.
        for system in [
            serde_json::json!({"load_1m": 1.5, "cpus": 0}),
            serde_json::json!({"load_1m": -1.0, "cpus": 2}),
            serde_json::json!({"load_1m": "high", "cpus": 2}),
            serde_json::json!({"cpus": 2}),
        ] {
            let body = body_with("summaries", serde_json::json!({"data": {"system": system}}));
            assert_eq!(parse_register(&body).unwrap().load, None, "{system}");
        }
    }

    #[test]
    fn register_body_omits_what_is_empty() {
        let body = RegisterBody {
            ip: "10.0.0.7".into(),
            server: "vid-x".into(),
            service: "svc".into(),
            pid: "42".into(),
            rtmp: vec!["1935".into()],
            ..RegisterBody::default()
        };
        let v = serde_json::to_value(&body).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["ip", "pid", "rtmp", "server", "service"]);
        let info = parse_register(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert!(info.device_id.is_none() && info.srt.is_empty() && info.rtc.is_empty());
        assert_eq!(info.load, None);
    }

    #[test]
    fn body_level_errors() {
        assert!(matches!(parse_register(b"{"), Err(RegisterError::Json(_))));
        assert!(matches!(parse_register(b""), Err(RegisterError::Json(_))));
        assert_eq!(
            parse_register(b"[1]"),
            Err(RegisterError::NotObject("an array"))
        );
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(
            parse_register(&big),
            Err(RegisterError::TooLarge(MAX_BODY + 1))
        );
    }
}
