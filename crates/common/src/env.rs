//! Validation of configuration values read from environment variables (docs/design.md §2 conventions):
//! listen addresses as a port or `ip:port`, Go-style durations, on/off switches. Every error names
//! the variable and the value.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A variable that failed validation; displays as `NAME="value": reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: {reason}")]
pub struct ConfigError {
    /// Variable name.
    pub name: String,
    /// Offending value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error for variable `name` holding `value`.
    pub fn new(name: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Parses a listen address: `1935` or `:1935` (all IPv4 interfaces), `ip:port`, `[v6]:port`.
/// Port 0 asks the system for a free port.
///
/// Errors: anything else, naming `name`.
pub fn parse_listen(name: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    let value = value.trim();
    let port_only = value.strip_prefix(':').unwrap_or(value);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    value.parse::<SocketAddr>().map_err(|_| {
        ConfigError::new(
            name,
            value,
            "expected a port (1935) or ip:port (127.0.0.1:1935)",
        )
    })
}

/// Parses a positive Go-style duration: `30s`, `500ms`, `2m`, `1h30m` (via `humantime`).
///
/// Errors: unparsable or zero, naming `name`.
pub fn parse_duration(name: &str, value: &str) -> Result<Duration, ConfigError> {
    let value = value.trim();
    let d = humantime::parse_duration(value).map_err(|e| {
        ConfigError::new(
            name,
            value,
            format!("expected a duration like 30s, 500ms or 2m ({e})"),
        )
    })?;
    if d.is_zero() {
        return Err(ConfigError::new(name, value, "must be greater than zero"));
    }
    Ok(d)
}

/// Parses a switch: `on`/`off` (also `true`/`false`, `1`/`0`, any case; empty is off).
///
/// Errors: anything else, naming `name`.
pub fn parse_switch(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" | "" => Ok(false),
        _ => Err(ConfigError::new(name, value, "expected on or off")),
    }
}

/// Parses a TCP/UDP port 1-65535.
///
/// Errors: anything else, naming `name`.
pub fn parse_port(name: &str, value: &str) -> Result<u16, ConfigError> {
    match value.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ConfigError::new(
            name,
            value,
            "expected a port number 1-65535",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_listen("X", "1935").unwrap(),
            "0.0.0.0:1935".parse().unwrap()
        );
        assert_eq!(parse_listen("X", ":1935").unwrap().port(), 1935);
        assert_eq!(
            parse_listen("X", "127.0.0.1:1935").unwrap(),
            "127.0.0.1:1935".parse().unwrap()
        );
        assert_eq!(
            parse_listen("X", "[::1]:1935").unwrap(),
            "[::1]:1935".parse().unwrap()
        );
        let e = parse_listen("PROXY_X", "70000").unwrap_err();
        assert_eq!(e.name, "PROXY_X");
        assert!(parse_listen("X", "abc").is_err());
    }

    #[test]
    fn durations_go_style() {
        assert_eq!(
            parse_duration("X", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("X", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("X", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert!(parse_duration("X", "30").is_err());
        assert!(parse_duration("X", "0s").is_err());
        assert!(parse_duration("X", "soon")
            .unwrap_err()
            .to_string()
            .starts_with("X=\"soon\""));
    }

    #[test]
    fn switches_and_ports() {
        assert!(parse_switch("X", "ON").unwrap());
        assert!(!parse_switch("X", "off").unwrap());
        assert!(parse_switch("X", "maybe").is_err());
        assert_eq!(parse_port("X", "1935").unwrap(), 1935);
        assert!(parse_port("X", "0").is_err());
    }
}
