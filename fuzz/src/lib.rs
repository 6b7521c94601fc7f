//! Checks shared by the fuzz targets.

use srs_cluster::{StreamKey, DEFAULT_VHOST, MAX_KEY_LEN};

/// Panics unless `key` keeps the promises of `srs_cluster::key` (docs/design.md §4): at most
/// [`MAX_KEY_LEN`] bytes as `vhost/app/stream`; the vhost a lowercase name without `/` or
/// [`DEFAULT_VHOST`]; app and stream non-empty, the stream without `/`, no empty, `.` or `..`
/// segment, no control character or backslash; and the Display form splits back into the same
/// three parts (first and last `/`).
pub fn check_key(key: &StreamKey) {
    let shown = key.to_string();
    assert!(
        shown.len() <= MAX_KEY_LEN,
        "{} bytes: {shown:?}",
        shown.len()
    );
    assert!(
        key.vhost == DEFAULT_VHOST
            || (!key.vhost.is_empty()
                && key.vhost.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
                })),
        "vhost {:?}",
        key.vhost
    );
    assert!(!key.stream.contains('/'), "stream {:?}", key.stream);
    for segment in key.app.split('/').chain([key.stream.as_str()]) {
        assert!(
            !matches!(segment, "" | "." | ".."),
            "segment {segment:?} in {shown:?}"
        );
        assert!(
            !segment.chars().any(|c| c.is_control() || c == '\\'),
            "forbidden character in {shown:?}"
        );
    }
    let (vhost, rest) = shown.split_once('/').expect("a slash after the vhost");
    let (app, stream) = rest.rsplit_once('/').expect("a slash before the stream");
    assert_eq!((vhost, app, stream), (&*key.vhost, &*key.app, &*key.stream));
}
