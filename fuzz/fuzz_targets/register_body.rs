//! `parse_register` on arbitrary bytes; must never panic, and an accepted body gives an origin
//! whose id is `server/service/pid`, with at least one RTMP endpoint, every endpoint a resolved
//! `host:port` that parses back to the same endpoint, and a JSON form (the store's record) that reads back
//! equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_cluster::{parse_register, Endpoint, OriginInfo};

fuzz_target!(|data: &[u8]| {
    let Ok(info) = parse_register(data) else {
        return;
    };
    assert_eq!(
        info.id,
        format!("{}/{}/{}", info.server, info.service, info.pid)
    );
    assert!(!info.rtmp.is_empty());
    for list in [&info.rtmp, &info.http, &info.api, &info.srt, &info.rtc] {
        for addr in list {
            let endpoint = Endpoint::parse(addr).expect("a resolved endpoint parses");
            assert!(endpoint.host.is_some(), "{addr:?} has no host");
            assert_eq!(Endpoint::parse(&endpoint.resolve("unused")), Ok(endpoint));
        }
    }
    let json = serde_json::to_string(&info).expect("an origin encodes");
    let back: OriginInfo = serde_json::from_str(&json).expect("an origin decodes");
    assert_eq!(back, info);
});
