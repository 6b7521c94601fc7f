//! Sans-IO HTTP/1.1 for relaying at the head level (docs/design.md §6.2): request and response
//! heads parsed from bytes (bounded, on `httparse`) and written back, the body framing a head
//! announces (RFC 9112 §6.3), and a chunked-body tracker (RFC 9112 §7.1) that finds where a
//! chunked body ends without buffering it. Nothing here does I/O.

pub mod chunked;
pub mod head;

pub use chunked::{ChunkedBody, ChunkedError, Piece};
pub use head::{
    request_body, response_body, write_request_head, write_response_head, BodyLength, FramingError,
    HeadError, RequestHead, ResponseHead, MAX_HEADERS,
};
