//! Rewrites arbitrary playlists against a [`Target`] built from the input: byte 0 is the length
//! of the playlist path (low 6 bits) and whether to put `#EXTM3U` first (high bit), byte 1 the
//! length of the `,`-separated local authorities, then the path, the authorities and the
//! playlist. Must never panic; on success the output has the input's lines, and every URI line
//! that was rewritten is a path starting with exactly one `/`, without dot or empty segments,
//! carrying the session id (the srs-hls module docs); other URI lines are left as they were.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_hls::{rewrite_playlist, Target, SESSION_PARAM};

const SESSION_ID: &str = "0123456789abcdef0123456789abcdef";

/// The `\n`-terminated lines of `text`, without their terminators and surrounding whitespace.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').map(str::trim).collect()
}

fuzz_target!(|data: &[u8]| {
    let [flags, authorities_len, rest @ ..] = data else {
        return;
    };
    let path_len = usize::from(flags & 0x3f).min(rest.len());
    let (path, rest) = rest.split_at(path_len);
    let authorities_len = usize::from(authorities_len & 0x3f).min(rest.len());
    let (authorities, body) = rest.split_at(authorities_len);
    let path = String::from_utf8_lossy(path);
    let authorities = String::from_utf8_lossy(authorities);
    let local: Vec<&str> = authorities.split(',').filter(|a| !a.is_empty()).collect();
    let mut playlist = Vec::new();
    if flags & 0x80 != 0 {
        playlist.extend_from_slice(b"#EXTM3U\n");
    }
    playlist.extend_from_slice(body);

    let target = Target {
        playlist_path: &path,
        local_authorities: &local,
        session_id: SESSION_ID,
    };
    let Ok(out) = rewrite_playlist(&playlist, &target) else {
        return;
    };
    let input = String::from_utf8(playlist).expect("a rewritten playlist was UTF-8");
    let input = input.strip_prefix('\u{feff}').unwrap_or(&input);
    let (before, after) = (lines(input), lines(&out));
    assert_eq!(before.len(), after.len(), "line count changed");
    let session = format!("{SESSION_PARAM}={SESSION_ID}");
    for (old, new) in before.iter().zip(&after) {
        if new.is_empty() || new.starts_with('#') || old == new {
            continue;
        }
        assert!(
            new.starts_with('/') && !new.starts_with("//"),
            "{old:?} became {new:?}"
        );
        let path = new.split(['?', '#']).next().unwrap_or("");
        let inner = path.strip_suffix('/').unwrap_or(path);
        assert!(
            inner.is_empty() || inner[1..].split('/').all(|s| !matches!(s, "" | "." | "..")),
            "{old:?} became {new:?}"
        );
        assert!(new.contains(&session), "{old:?} became {new:?}");
    }
});
