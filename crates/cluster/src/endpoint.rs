//! Origin endpoint forms as SRS's heartbeat reports them (docs/design.md §3).

use std::net::IpAddr;

/// Why an endpoint string was refused (docs/design.md §3). Payloads are the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The string is empty.
    #[error("empty endpoint")]
    Empty,
    /// A scheme other than `tcp://` or `udp://`.
    #[error("unsupported scheme {0:?}: expected tcp:// or udp://")]
    Scheme(String),
    /// The port is not a number in 1..=65535.
    #[error("bad port {0:?}: expected 1..=65535")]
    Port(String),
    /// The host is neither an IP address nor a host name.
    #[error("bad host {0:?}: expected an IP address or a host name")]
    Host(String),
    /// The text does not have the shape `[scheme://][host]:port` (e.g. an unbracketed IPv6).
    #[error(
        "bad endpoint {0:?}: expected `port`, `host:port`, `[ipv6]:port` or `tcp://host:port`"
    )]
    Form(String),
}

/// One listening address of an origin (docs/design.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host to dial: an IP literal (IPv6 without brackets) or a host name; `None` when the
    /// origin gave a wildcard (`0.0.0.0`, `::`) or no address, meaning "use the origin's `ip`".
    pub host: Option<String>,
    /// The port, 1..=65535.
    pub port: u16,
}

impl Endpoint {
    /// Parses `1935`, `tcp://:1935`, `tcp://0.0.0.0:1935`, `tcp://192.168.3.10:1935`,
    /// `udp://0.0.0.0:8001`, `[::]:1935`, `udp://[::1]:8001`, `host.name:1935` (docs/design.md §3).
    ///
    /// Errors: [`EndpointError`] naming the bad part; port 0 is refused.
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(EndpointError::Empty);
        }
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tcp") => rest,
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("udp") => rest,
            Some((scheme, _)) => return Err(EndpointError::Scheme(scheme.to_owned())),
            None => s,
        };
        if rest.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Endpoint {
                host: None,
                port: parse_port(rest)?,
            });
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| EndpointError::Form(s.to_owned()))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| EndpointError::Form(s.to_owned()))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(EndpointError::Host(host.to_owned()));
            }
            (host, port)
        } else {
            match rest.split_once(':') {
                Some((host, port)) if !port.contains(':') => (host, port),
                _ => return Err(EndpointError::Form(s.to_owned())),
            }
        };
        let port = parse_port(port)?;
        let host = if host.is_empty() {
            None
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            (!ip.is_unspecified()).then(|| ip.to_string())
        } else if is_host_name(host) {
            Some(host.to_owned())
        } else {
            return Err(EndpointError::Host(host.to_owned()));
        };
        Ok(Endpoint { host, port })
    }

    /// The `host:port` to dial: `origin_ip` stands in for a missing host; IPv6 literals are
    /// bracketed (`[::1]:8001`).
    pub fn resolve(&self, origin_ip: &str) -> String {
        let host = self.host.as_deref().unwrap_or(origin_ip);
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Whether `s` is a plausible DNS host name: 1..=253 bytes of dot-separated non-empty labels made
/// of ASCII letters, digits, `-` and `_`.
pub(crate) fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn parse_port(s: &str) -> Result<u16, EndpointError> {
    match s.parse::<u16>() {
        Ok(port) if port != 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(EndpointError::Port(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: Option<&str>, port: u16) -> Endpoint {
        Endpoint {
            host: host.map(str::to_owned),
            port,
        }
    }

    #[test]
    fn spec_forms() {
        assert_eq!(Endpoint::parse("1935"), Ok(ep(None, 1935)));
        assert_eq!(Endpoint::parse("tcp://:1935"), Ok(ep(None, 1935)));
        assert_eq!(Endpoint::parse("tcp://0.0.0.0:1935"), Ok(ep(None, 1935)));
        assert_eq!(
            Endpoint::parse("tcp://192.168.3.10:1935"),
            Ok(ep(Some("192.168.3.10"), 1935))
        );
        assert_eq!(Endpoint::parse("udp://0.0.0.0:8001"), Ok(ep(None, 8001)));
        assert_eq!(
            Endpoint::parse("10.0.0.2:19352"),
            Ok(ep(Some("10.0.0.2"), 19352))
        );
        assert_eq!(
            Endpoint::parse("TCP://origin.example.com:1935"),
            Ok(ep(Some("origin.example.com"), 1935))
        );
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(Endpoint::parse("[::]:1935"), Ok(ep(None, 1935)));
        assert_eq!(
            Endpoint::parse("udp://[::1]:8001"),
            Ok(ep(Some("::1"), 8001))
        );
        assert_eq!(
            Endpoint::parse("tcp://[fe80::1]:1935"),
            Ok(ep(Some("fe80::1"), 1935))
        );
        assert_eq!(
            Endpoint::parse("::1:1935"),
            Err(EndpointError::Form("::1:1935".into()))
        );
        assert_eq!(
            Endpoint::parse("[::1]1935"),
            Err(EndpointError::Form("[::1]1935".into()))
        );
        assert_eq!(
            Endpoint::parse("[nope]:1935"),
            Err(EndpointError::Host("nope".into()))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(Endpoint::parse(""), Err(EndpointError::Empty));
        assert_eq!(Endpoint::parse("0"), Err(EndpointError::Port("0".into())));
        assert_eq!(
            Endpoint::parse("65536"),
            Err(EndpointError::Port("65536".into()))
        );
        assert_eq!(
            Endpoint::parse("99999999999999999999"),
            Err(EndpointError::Port("99999999999999999999".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://:0"),
            Err(EndpointError::Port("0".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://h:+80"),
            Err(EndpointError::Port("+80".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://h:"),
            Err(EndpointError::Port("".into()))
        );
        assert_eq!(
            Endpoint::parse("http://h:80"),
            Err(EndpointError::Scheme("http".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://bad host:80"),
            Err(EndpointError::Host("bad host".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://h"),
            Err(EndpointError::Form("tcp://h".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://h:80/x"),
            Err(EndpointError::Port("80/x".into()))
        );
    }

    #[test]
    fn resolve() {
        assert_eq!(ep(None, 1935).resolve("10.0.0.1"), "10.0.0.1:1935");
        assert_eq!(
            ep(Some("10.0.0.2"), 1935).resolve("10.0.0.1"),
            "10.0.0.2:1935"
        );
        assert_eq!(ep(Some("::1"), 8001).resolve("10.0.0.1"), "[::1]:8001");
        assert_eq!(ep(None, 8001).resolve("fd00::5"), "[fd00::5]:8001");
    }
}
