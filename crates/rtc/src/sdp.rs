//! What the relay reads and changes in an SDP offer or answer (RFC 8866, RFC 8839), done on the
//! text so that every line it does not change stays byte for byte: an SDP library's
//! re-serialization would drop attributes it does not know.
//!
//! - [`validate`] checks the description with `webrtc-sdp`'s parser (read only);
//! - [`ice_credentials`] reads `a=ice-ufrag` / `a=ice-pwd` (RFC 8839 §5.4);
//! - [`rewrite_candidates`] replaces an answer's candidates (RFC 8839 §5.1) with the relay's.

use std::net::{IpAddr, SocketAddr};

/// Largest SDP the relay reads: a Chromium offer with audio, video and data is ~6 KiB; this
/// leaves room for many media sections and still bounds what one request may hold.
pub const MAX_SDP: usize = 64 * 1024;

/// Why an SDP cannot be relayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Larger than [`MAX_SDP`].
    #[error("SDP of {0} bytes is larger than {MAX_SDP}")]
    TooLarge(usize),
    /// `webrtc-sdp` refused it.
    #[error("bad SDP: {0}")]
    Invalid(String),
    /// No `a=ice-ufrag` or `a=ice-pwd`, or sections disagree on them.
    #[error("SDP without a usable {0}")]
    Ice(&'static str),
    /// The answer has no host UDP candidate with an IP address to replace.
    #[error("SDP answer without a host UDP candidate")]
    NoHostCandidate,
    /// The relay's own candidate address is not a single token.
    #[error("candidate address {0:?} is not a host name or IP address")]
    BadAddress(String),
}

/// The ICE username fragment and password of one side (RFC 8839 §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IceCredentials<'a> {
    /// `a=ice-ufrag` (4 to 256 characters).
    pub ufrag: &'a str,
    /// `a=ice-pwd` (22 to 256 characters).
    pub pwd: &'a str,
}

/// Checks that `sdp` is a session description `webrtc-sdp` parses, within [`MAX_SDP`].
///
/// Errors: [`SdpError::TooLarge`], [`SdpError::Invalid`] with the parser's reason.
pub fn validate(sdp: &str) -> Result<(), SdpError> {
    if sdp.len() > MAX_SDP {
        return Err(SdpError::TooLarge(sdp.len()));
    }
    webrtc_sdp::parse_sdp(sdp, false)
        .map(|_| ())
        .map_err(|e| SdpError::Invalid(e.to_string()))
}

/// The lines of `sdp` without their terminators (`\r\n` or `\n`).
fn lines(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.lines().map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// The ICE credentials of `sdp`: its `a=ice-ufrag` and `a=ice-pwd`, at session or media level.
/// With BUNDLE every section carries the same pair; sections that disagree are refused, because
/// connectivity checks would then name a fragment the relay did not record.
///
/// Errors: [`SdpError::Ice`] when either is missing, empty, too long or inconsistent.
pub fn ice_credentials(sdp: &str) -> Result<IceCredentials<'_>, SdpError> {
    let one = |name: &'static str| -> Result<&str, SdpError> {
        let mut found: Option<&str> = None;
        for value in lines(sdp).filter_map(|l| l.strip_prefix(name)) {
            let value = value.trim();
            if value.is_empty() || value.len() > 256 || value.contains(char::is_whitespace) {
                return Err(SdpError::Ice(name));
            }
            match found {
                Some(f) if f != value => return Err(SdpError::Ice(name)),
                _ => found = Some(value),
            }
        }
        found.ok_or(SdpError::Ice(name))
    };
    Ok(IceCredentials {
        ufrag: one("a=ice-ufrag:")?,
        pwd: one("a=ice-pwd:")?,
    })
}

/// An answer whose candidates were rewritten, and the origin's host UDP candidates it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The new SDP text.
    pub sdp: String,
    /// The origin's host UDP candidates, in order, without duplicates.
    pub origin_candidates: Vec<SocketAddr>,
}

/// One `a=candidate` line's fields (RFC 8839 §5.1), borrowed.
struct Candidate<'a> {
    /// `foundation component transport priority`.
    fields: [&'a str; 4],
    address: &'a str,
    port: &'a str,
    kind: &'a str,
}

fn parse_candidate(value: &str) -> Option<Candidate<'_>> {
    let mut t = value.split_ascii_whitespace();
    let fields = [t.next()?, t.next()?, t.next()?, t.next()?];
    let (address, port) = (t.next()?, t.next()?);
    if t.next()? != "typ" {
        return None;
    }
    Some(Candidate {
        fields,
        address,
        port,
        kind: t.next()?,
    })
}

/// Rewrites the `a=candidate` lines of an origin's `answer` so that media comes to the relay: in
/// each media section the first host UDP candidate with an IP address becomes one host candidate
/// at `port` and `address` (the relay's candidate address; `None` keeps the origin's address),
/// keeping its foundation, component and priority; every other candidate line (TCP, srflx,
/// relay, further host ones) is removed. Every other line stays byte for byte, line endings too.
///
/// Errors: [`SdpError::NoHostCandidate`] when no section has a host UDP candidate,
/// [`SdpError::BadAddress`] when `address` is empty or holds whitespace.
pub fn rewrite_candidates(
    answer: &str,
    port: u16,
    address: Option<&str>,
) -> Result<Rewritten, SdpError> {
    if let Some(a) = address {
        if a.is_empty() || a.contains(char::is_whitespace) {
            return Err(SdpError::BadAddress(a.to_string()));
        }
    }
    let mut sdp = String::with_capacity(answer.len());
    let mut origin_candidates = Vec::new();
    // Whether the current media section (or the session part) already has the relay's candidate.
    let mut written = false;
    for raw in answer.split_inclusive('\n') {
        let body = raw.trim_end_matches(['\r', '\n']);
        let ending = &raw[body.len()..];
        if body.starts_with("m=") {
            written = false;
        }
        let Some(value) = body.strip_prefix("a=candidate:") else {
            sdp.push_str(raw);
            continue;
        };
        let Some(c) = parse_candidate(value) else {
            continue;
        };
        let host_udp = c.kind == "host" && c.fields[2].eq_ignore_ascii_case("udp");
        let origin = match (c.address.parse::<IpAddr>(), c.port.parse::<u16>()) {
            (Ok(ip), Ok(p)) if host_udp => SocketAddr::new(ip, p),
            _ => continue,
        };
        if !origin_candidates.contains(&origin) {
            origin_candidates.push(origin);
        }
        if written {
            continue;
        }
        written = true;
        let [foundation, component, transport, priority] = c.fields;
        let address = address.unwrap_or(c.address);
        sdp.push_str(&format!(
            "a=candidate:{foundation} {component} {transport} {priority} {address} {port} typ host generation 0{ending}"
        ));
    }
    if origin_candidates.is_empty() {
        return Err(SdpError::NoHostCandidate);
    }
    Ok(Rewritten {
        sdp,
        origin_candidates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = include_str!("../tests/fixtures/chromium-whip-offer.sdp");
    const SRS_ANSWER: &str = include_str!("../tests/fixtures/srs-7.0.18-whep-answer.sdp");

    #[test]
    fn real_offers_and_answers_validate_and_give_their_credentials() {
        validate(OFFER).unwrap();
        validate(SRS_ANSWER).unwrap();
        let offer = ice_credentials(OFFER).unwrap();
        assert_eq!(
            (offer.ufrag, offer.pwd),
            ("I9Xw", "DiYl9SBGaQig+Y7BcNFavMG8")
        );
        let answer = ice_credentials(SRS_ANSWER).unwrap();
        assert_eq!(answer.ufrag, "835e611f");
        assert_eq!(answer.pwd, "i88l69038v2nnw146o9vme3y048w7j59");
    }

    #[test]
    fn srs_origin_answers_are_rewritten_in_their_one_bundled_candidate() {
        for answer in [
            include_str!("../tests/fixtures/srs-origin-whip-answer.sdp"),
            include_str!("../tests/fixtures/srs-origin-whep-answer.sdp"),
        ] {
            validate(answer).unwrap();
            let ice = ice_credentials(answer).unwrap();
            assert!(ice.ufrag.len() >= 4 && ice.pwd.len() >= 22);
            let r = rewrite_candidates(answer, 18000, None).unwrap();
            assert_eq!(r.origin_candidates.len(), 1);
            assert_eq!(r.origin_candidates[0].ip().to_string(), "127.0.0.1");
            let lines: Vec<&str> = r
                .sdp
                .lines()
                .filter(|l| l.starts_with("a=candidate"))
                .collect();
            assert_eq!(lines.len(), 1, "str0m writes one candidate for the bundle");
            assert!(
                lines[0].contains(" 127.0.0.1 18000 typ host"),
                "{}",
                lines[0]
            );
            validate(&r.sdp).unwrap();
        }
    }

    #[test]
    fn bad_descriptions_are_refused() {
        assert!(matches!(validate("hello"), Err(SdpError::Invalid(_))));
        assert!(matches!(
            validate(&"v=0\r\n".repeat(20_000)),
            Err(SdpError::TooLarge(_))
        ));
        let no_ufrag = SRS_ANSWER.replace("a=ice-ufrag:835e611f\r\n", "");
        assert_eq!(
            ice_credentials(&no_ufrag),
            Err(SdpError::Ice("a=ice-ufrag:"))
        );
        let split = SRS_ANSWER.replacen("a=ice-ufrag:835e611f", "a=ice-ufrag:other", 1);
        assert_eq!(ice_credentials(&split), Err(SdpError::Ice("a=ice-ufrag:")));
    }

    #[test]
    fn srs_answer_candidates_point_at_the_relay_and_nothing_else_changes() {
        let r = rewrite_candidates(SRS_ANSWER, 18000, Some("203.0.113.7")).unwrap();
        assert_eq!(r.origin_candidates, ["127.0.0.1:22374".parse().unwrap()]);
        let want = SRS_ANSWER.replace(
            "a=candidate:0 1 udp 2130706431 127.0.0.1 22374 typ host generation 0",
            "a=candidate:0 1 udp 2130706431 203.0.113.7 18000 typ host generation 0",
        );
        assert_eq!(r.sdp, want);
        // Without an address the origin's stays.
        let r = rewrite_candidates(SRS_ANSWER, 18000, None).unwrap();
        assert!(r.sdp.contains(" 127.0.0.1 18000 typ host"));
        assert!(!r.sdp.contains("22374"));
    }

    #[test]
    fn tcp_and_non_host_candidates_go_and_one_host_candidate_stays_per_section() {
        // Chromium's offer has two host UDP (IPv4, IPv6) and two TCP candidates per section.
        let r = rewrite_candidates(OFFER, 9, Some("192.0.2.9")).unwrap();
        assert_eq!(
            r.origin_candidates,
            [
                "192.0.2.2:39730".parse().unwrap(),
                "[fd00::2]:39402".parse().unwrap(),
                "192.0.2.2:43530".parse().unwrap(),
                "[fd00::2]:46559".parse().unwrap(),
            ]
        );
        let candidates: Vec<&str> = r
            .sdp
            .lines()
            .filter(|l| l.starts_with("a=candidate"))
            .collect();
        assert_eq!(
            candidates,
            [
                "a=candidate:2530290790 1 udp 2122194687 192.0.2.9 9 typ host generation 0",
                "a=candidate:2530290790 1 udp 2122194687 192.0.2.9 9 typ host generation 0",
            ]
        );
        let others = |s: &str| -> Vec<String> {
            s.split_inclusive('\n')
                .filter(|l| !l.starts_with("a=candidate"))
                .map(String::from)
                .collect()
        };
        assert_eq!(others(&r.sdp), others(OFFER));
        let srflx = SRS_ANSWER.replace(" typ host", " typ srflx raddr 0.0.0.0 rport 0");
        assert_eq!(
            rewrite_candidates(&srflx, 9, None),
            Err(SdpError::NoHostCandidate)
        );
        assert!(matches!(
            rewrite_candidates(SRS_ANSWER, 9, Some("a b")),
            Err(SdpError::BadAddress(_))
        ));
    }
}
