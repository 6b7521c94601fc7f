//! The little of HLS playlists (RFC 8216) an HLS player of srs-bench reads: the first variant of
//! a master playlist, and a media playlist's target duration, first sequence number and segments.

use std::time::Duration;

use anyhow::bail;

/// Segment length assumed when a media playlist states none.
const DEFAULT_TARGET: Duration = Duration::from_secs(2);

/// URI lines of a playlist: neither blank nor tags/comments.
fn uri_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Fails unless `text` starts with `#EXTM3U`.
pub fn check(text: &str) -> anyhow::Result<()> {
    if !text.trim_start().starts_with("#EXTM3U") {
        bail!("not a playlist (no #EXTM3U)");
    }
    Ok(())
}

/// The URI of the first variant of a master playlist; `None` for a media playlist.
pub fn first_variant(text: &str) -> Option<&str> {
    if !text.contains("#EXT-X-STREAM-INF") {
        return None;
    }
    uri_lines(text).next()
}

/// What a player needs from a media playlist.
#[derive(Debug, PartialEq, Eq)]
pub struct MediaPlaylist<'a> {
    /// `#EXT-X-TARGETDURATION`.
    pub target: Duration,
    /// `#EXT-X-MEDIA-SEQUENCE`: the sequence number of the first listed segment.
    pub first_seq: u64,
    /// Segment URIs, oldest first.
    pub segments: Vec<&'a str>,
}

impl<'a> MediaPlaylist<'a> {
    /// Reads a media playlist; missing tags take their RFC defaults (sequence 0).
    pub fn parse(text: &'a str) -> MediaPlaylist<'a> {
        let tag = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        MediaPlaylist {
            target: tag("#EXT-X-TARGETDURATION:").map_or(DEFAULT_TARGET, Duration::from_secs),
            first_seq: tag("#EXT-X-MEDIA-SEQUENCE:").unwrap_or(0),
            segments: uri_lines(text).collect(),
        }
    }
}

/// The request path of `uri`, listed in the playlist fetched at path `base`: absolute paths as
/// they are, relative ones against `base`'s directory, and absolute URLs by their path (srs-bench
/// only talks to the one loopback server it was given).
pub fn resolve(base: &str, uri: &str) -> String {
    if uri.starts_with('/') {
        return uri.to_string();
    }
    if let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    {
        return rest
            .find('/')
            .map_or_else(|| "/".to_string(), |i| rest[i..].to_string());
    }
    let base = base.split('?').next().unwrap_or(base);
    let dir = base.rfind('/').map_or("/", |i| &base[..=i]);
    format!("{dir}{uri}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_and_media() {
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,AVERAGE-BANDWIDTH=1\n\
                      /live/s.m3u8?hls_ctx=ab12cd34&spbhid=ff\n";
        assert!(check(master).is_ok());
        assert_eq!(
            first_variant(master),
            Some("/live/s.m3u8?hls_ctx=ab12cd34&spbhid=ff")
        );
        let media = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n\
                     #EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000,\ns-7.ts?hls_ctx=a\n\
                     #EXTINF:2.000,\ns-8.ts?hls_ctx=a\n";
        assert_eq!(first_variant(media), None);
        assert_eq!(
            MediaPlaylist::parse(media),
            MediaPlaylist {
                target: Duration::from_secs(3),
                first_seq: 7,
                segments: vec!["s-7.ts?hls_ctx=a", "s-8.ts?hls_ctx=a"],
            }
        );
        assert!(check("<html>").is_err());
    }

    #[test]
    fn resolves_uris() {
        let base = "/live/s.m3u8?hls_ctx=a";
        assert_eq!(resolve(base, "s-1.ts?x=1"), "/live/s-1.ts?x=1");
        assert_eq!(resolve(base, "/other/s-1.ts"), "/other/s-1.ts");
        assert_eq!(
            resolve(base, "http://127.0.0.1:8080/live/s-1.ts?a=b"),
            "/live/s-1.ts?a=b"
        );
        assert_eq!(resolve("/a/b/c.m3u8?q=/x", "d.ts"), "/a/b/d.ts");
    }
}
