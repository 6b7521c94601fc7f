//! The protocol a request needs from an origin (docs/design.md §5) and the direction it goes
//! (docs/design.md §6).

use std::fmt;

/// What a request needs from an origin (docs/design.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RTMP publish or play: an `rtmp` endpoint.
    Rtmp,
    /// HTTP-FLV, HTTP-TS, HLS: an `http` endpoint.
    Http,
    /// SRT publish or play: an `srt` endpoint.
    Srt,
    /// WHIP/WHEP: an `api` endpoint for signalling and an `rtc` endpoint for media.
    Rtc,
}

impl Protocol {
    /// The [`crate::OriginInfo`] endpoint lists that must all be non-empty for an origin to
    /// serve this protocol (`["api", "rtc"]` for WebRTC); the field names of its JSON form.
    pub fn required_endpoints(self) -> &'static [&'static str] {
        match self {
            Protocol::Rtmp => &["rtmp"],
            Protocol::Http => &["http"],
            Protocol::Srt => &["srt"],
            Protocol::Rtc => &["api", "rtc"],
        }
    }
}

impl fmt::Display for Protocol {
    /// Lowercase name of what is needed: `rtmp`, `http`, `srt`, `api+rtc`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Http => "http",
            Protocol::Srt => "srt",
            Protocol::Rtc => "api+rtc",
        })
    }
}

/// The one publish/play direction of every protocol (docs/design.md §6): RTMP's `publish` or
/// `play` command, SRT's `m=publish` or `m=request`, WHIP or WHEP, and HTTP-FLV, HTTP-TS and
/// HLS, which only play. Serialized as `"publish"` / `"play"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The client sends media to the origin.
    Publish,
    /// The client receives media from the origin.
    Play,
}

impl Direction {
    /// `"publish"` or `"play"`, as in the serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Publish => "publish",
            Direction::Play => "play",
        }
    }
}

impl fmt::Display for Direction {
    /// Same as [`Direction::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_names_agree() {
        for d in [Direction::Publish, Direction::Play] {
            assert_eq!(d.to_string(), d.as_str());
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.as_str()));
            assert_eq!(serde_json::from_str::<Direction>(&json).unwrap(), d);
        }
    }

    #[test]
    fn protocol_display_and_requirements() {
        assert_eq!(Protocol::Rtc.to_string(), "api+rtc");
        assert_eq!(Protocol::Rtc.required_endpoints(), ["api", "rtc"]);
        assert_eq!(Protocol::Http.required_endpoints(), ["http"]);
    }
}
