//! Loop prevention at registration (docs/design.md §3): an origin endpoint that is one of this
//! proxy's own listeners would make the proxy relay to itself, each hop opening another session,
//! until descriptors run out. Such a registration is refused.
//!
//! Relayed sessions also carry the ids of the proxies they passed through: HTTP requests in `Via`
//! (`http::origin::looped`), RTMP sessions in the `connect` command object ([`rtmp_via`]). A
//! proxy that finds its own id there refuses the request, which catches loops through other
//! proxies.

use std::net::{IpAddr, SocketAddr};

use srs_cluster::OriginInfo;

use crate::config::Config;

/// Whether `ip` is an address of this host: loopback, unspecified (`0.0.0.0` means "here"), or
/// one a socket can be bound to (the kernel refuses addresses of no local interface).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Whether a connection to `endpoint` would reach `listener` (a bound address; unspecified for
/// a wildcard bind).
fn reaches(endpoint: SocketAddr, listener: SocketAddr) -> bool {
    if endpoint.port() != listener.port() {
        return false;
    }
    if listener.ip().is_unspecified() {
        is_local(endpoint.ip())
    } else {
        endpoint.ip() == listener.ip() || endpoint.ip().is_unspecified()
    }
}

/// A listener's variable and bound address.
type Listener = (&'static str, SocketAddr);

/// The first endpoint of `info` that is one of this proxy's listeners, described for the
/// register response (`"rtmp endpoint 127.0.0.1:1935 is this proxy's PROXY_RTMP_SERVER"`);
/// `None` when there is none. Endpoints given as host names are not resolved here.
pub fn own_endpoint(config: &Config, info: &OriginInfo) -> Option<String> {
    let tcp: [Listener; 4] = [
        ("PROXY_RTMP_SERVER", config.rtmp_server),
        ("PROXY_HTTP_SERVER", config.http_server),
        ("PROXY_HTTP_API", config.http_api),
        ("PROXY_SYSTEM_API", config.system_api),
    ];
    let udp: [Listener; 2] = [
        ("PROXY_SRT_SERVER", config.srt_server),
        ("PROXY_WEBRTC_SERVER", config.webrtc_server),
    ];
    let lists: [(&str, &[String], &[Listener]); 5] = [
        ("rtmp", &info.rtmp, &tcp),
        ("http", &info.http, &tcp),
        ("api", &info.api, &tcp),
        ("srt", &info.srt, &udp),
        ("rtc", &info.rtc, &udp),
    ];
    for (kind, endpoints, listeners) in lists {
        for endpoint in endpoints {
            let Ok(addr) = endpoint.parse::<SocketAddr>() else {
                continue;
            };
            if let Some((var, _)) = listeners.iter().find(|(_, l)| reaches(addr, *l)) {
                return Some(format!("{kind} endpoint {endpoint} is this proxy's {var}"));
            }
        }
    }
    None
}

/// The first endpoint of `info` outside `networks` (`PROXY_ORIGIN_NETWORKS`), described for the
/// register response; `None` when every endpoint is inside, or `networks` is empty (any
/// address). An endpoint given as a host name cannot be checked and counts as outside.
pub fn outside_networks(networks: &[ipnet::IpNet], info: &OriginInfo) -> Option<String> {
    if networks.is_empty() {
        return None;
    }
    let lists: [(&str, &[String]); 5] = [
        ("rtmp", &info.rtmp),
        ("http", &info.http),
        ("api", &info.api),
        ("srt", &info.srt),
        ("rtc", &info.rtc),
    ];
    for (kind, endpoints) in lists {
        for endpoint in endpoints {
            let inside = endpoint
                .parse::<SocketAddr>()
                .is_ok_and(|a| networks.iter().any(|n| n.contains(&a.ip())));
            if !inside {
                return Some(format!(
                    "{kind} endpoint {endpoint} is outside PROXY_ORIGIN_NETWORKS"
                ));
            }
        }
    }
    None
}

/// Whether the comma-separated hop list `via` names the proxy `id`: an entry's last word is a
/// proxy id (`1.1 srs-proxy-…` in HTTP `Via`, RFC 9110 §7.6.3; `srs-proxy-…` in RTMP).
pub fn names(via: &str, id: &str) -> bool {
    via.split(',')
        .any(|entry| entry.split_whitespace().last() == Some(id))
}

/// Longest hop list an RTMP `connect` may carry (about 40 proxies): a longer one is a loop.
const MAX_RTMP_VIA: usize = 1024;

/// Why a relayed RTMP session is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoopError {
    /// The hop list names this proxy: the session came back.
    #[error("the session came back to this proxy ({0}): an origin registration points at a proxy")]
    Looped(String),
    /// The hop list is longer than any real chain of proxies.
    #[error("the session passed through more proxies than allowed ({0} bytes of srsProxyVia)")]
    TooLong(usize),
}

/// The hop list to send to the origin for an RTMP session whose client's `connect` carried
/// `incoming` (its `srsProxyVia`, when there was one): `incoming, id`.
///
/// Errors: [`LoopError::Looped`] when `incoming` names `id`, [`LoopError::TooLong`] past
/// [`MAX_RTMP_VIA`] bytes.
pub fn rtmp_via(incoming: Option<&str>, id: &str) -> Result<String, LoopError> {
    match incoming.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(id.to_string()),
        Some(via) if via.len() > MAX_RTMP_VIA => Err(LoopError::TooLong(via.len())),
        Some(via) if names(via, id) => Err(LoopError::Looped(via.to_string())),
        Some(via) => Ok(format!("{via}, {id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(rtmp: &str, srt: &str) -> OriginInfo {
        OriginInfo {
            rtmp: vec![rtmp.to_string()],
            srt: vec![srt.to_string()],
            ..OriginInfo::new("127.0.0.1", "o", "s", "1")
        }
    }

    #[test]
    fn own_listeners_are_found_wildcard_binds_included() {
        let config = Config::from_pairs([
            ("PROXY_RTMP_SERVER", "1935"),
            ("PROXY_SRT_SERVER", "127.0.0.1:10080"),
        ])
        .unwrap();
        let own = own_endpoint(&config, &origin("127.0.0.1:1935", "127.0.0.1:1")).unwrap();
        assert!(own.contains("PROXY_RTMP_SERVER"), "{own}");
        assert!(own_endpoint(&config, &origin("0.0.0.0:1935", "127.0.0.1:1")).is_some());
        // A UDP endpoint only matches the UDP listeners.
        let own = own_endpoint(&config, &origin("127.0.0.1:1", "127.0.0.1:10080")).unwrap();
        assert!(own.contains("PROXY_SRT_SERVER"), "{own}");
        assert!(own_endpoint(&config, &origin("127.0.0.1:10080", "127.0.0.1:1")).is_none());
        // Another host, another port, or another address than a specific bind: not this proxy.
        assert!(own_endpoint(&config, &origin("192.0.2.1:1935", "127.0.0.1:1")).is_none());
        assert!(own_endpoint(&config, &origin("127.0.0.1:19351", "127.0.0.1:1")).is_none());
        assert!(own_endpoint(&config, &origin("127.0.0.1:1", "127.0.0.2:10080")).is_none());
        assert!(own_endpoint(&config, &origin("origin.example:1935", "127.0.0.1:1")).is_none());
    }

    #[test]
    fn endpoints_outside_the_networks_are_found() {
        let nets: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(outside_networks(&[], &origin("169.254.169.254:80", "10.0.0.1:1")).is_none());
        assert!(outside_networks(&nets, &origin("10.1.2.3:1935", "10.0.0.1:1")).is_none());
        let out = outside_networks(&nets, &origin("169.254.169.254:80", "10.0.0.1:1")).unwrap();
        assert!(out.contains("rtmp endpoint 169.254.169.254:80"), "{out}");
        let out = outside_networks(&nets, &origin("10.1.2.3:1935", "192.168.1.1:1")).unwrap();
        assert!(out.starts_with("srt"), "{out}");
        assert!(outside_networks(&nets, &origin("origin.example:1935", "10.0.0.1:1")).is_some());
    }

    #[test]
    fn rtmp_hop_lists_grow_and_loops_are_found() {
        assert_eq!(rtmp_via(None, "p1").unwrap(), "p1");
        assert_eq!(rtmp_via(Some(" "), "p1").unwrap(), "p1");
        assert_eq!(rtmp_via(Some("p0"), "p1").unwrap(), "p0, p1");
        assert!(matches!(
            rtmp_via(Some("p0, p1"), "p1"),
            Err(LoopError::Looped(_))
        ));
        assert!(!names("p10, p0", "p1"));
        assert!(names("1.1 edge, 1.1 p1", "p1"));
        let long = vec!["p"; 600].join(", ");
        assert!(matches!(
            rtmp_via(Some(&long), "p1"),
            Err(LoopError::TooLong(_))
        ));
    }
}
