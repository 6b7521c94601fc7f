//! Checks arbitrary request paths with `srs_hls::clean_request_path`; must never panic, and an
//! accepted path has no `.`/`..` segment (raw or decoded), no empty segment, no decoded `/`, `\`
//! or control character, and cleans to itself again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_hls::clean_request_path;

fuzz_target!(|data: &[u8]| {
    let path = String::from_utf8_lossy(data);
    let Ok(clean) = clean_request_path(&path) else {
        return;
    };
    assert!(clean.path.starts_with('/'), "{:?}", clean.path);
    let raw: Vec<&str> = clean.path[1..]
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(raw.len(), clean.segments.len(), "{:?}", clean.path);
    assert!(
        !clean.path[1..].contains("//")
            && (clean.segments.is_empty() || !clean.path.ends_with('/'))
    );
    for segment in raw
        .iter()
        .copied()
        .chain(clean.segments.iter().map(String::as_str))
    {
        assert!(!matches!(segment, "" | "." | ".."), "{:?}", clean.path);
    }
    for segment in &clean.segments {
        assert!(
            !segment
                .chars()
                .any(|c| c == '/' || c == '\\' || c.is_control()),
            "{segment:?}"
        );
    }
    assert_eq!(clean_request_path(&clean.path).as_ref(), Ok(&clean));
});
