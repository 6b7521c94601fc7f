//! `RequestHead::parse` and `ResponseHead::parse` (srs-http1) on any bytes, byte 0 choosing
//! which and the bound: must never panic; a complete head is within the input and the bound,
//! and written back by `write_*_head` it parses again to the same method, target, status and
//! headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_http1::{write_request_head, write_response_head, RequestHead, ResponseHead};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let max = 16 + usize::from(flags >> 1) * 8;
    if flags & 1 == 0 {
        if let Ok(Some((head, len))) = RequestHead::parse(input, max) {
            assert!(len <= input.len() && len <= max);
            let mut out = Vec::new();
            write_request_head(&mut out, &head.method, &head.target, &head.headers);
            let (again, n) = RequestHead::parse(&out, usize::MAX)
                .expect("a written head parses")
                .expect("a written head is complete");
            assert_eq!(n, out.len());
            assert_eq!(again.method, head.method);
            assert_eq!(again.target, head.target);
            assert_eq!(again.headers, head.headers);
            let _ = srs_http1::request_body(&head.headers);
            let _ = head.keep_alive();
        }
    } else if let Ok(Some((head, len))) = ResponseHead::parse(input, max) {
        assert!(len <= input.len() && len <= max);
        let mut out = Vec::new();
        write_response_head(&mut out, head.status, &head.headers);
        let (again, _) = ResponseHead::parse(&out, usize::MAX)
            .expect("a written head parses")
            .expect("a written head is complete");
        assert_eq!(again.status, head.status);
        assert_eq!(again.headers, head.headers);
        let _ = srs_http1::response_body(&http::Method::GET, head.status, &head.headers);
    }
});
