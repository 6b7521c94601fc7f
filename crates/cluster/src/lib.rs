//! What origins and proxies share, without I/O: stream identity (docs/design.md §4), origin
//! endpoints and the register/heartbeat body (docs/design.md §3), and the protocols and
//! directions of a request (docs/design.md §5, §6).

pub mod endpoint;
pub mod key;
pub mod protocol;
pub mod register;

pub use endpoint::{Endpoint, EndpointError};
pub use key::{
    percent_decode, query_param, vhost_from_host, KeyError, StreamKey, DEFAULT_VHOST, MAX_KEY_LEN,
};
pub use protocol::{Direction, Protocol};
pub use register::{
    parse_register, OriginInfo, RegisterBody, RegisterError, Summaries, SummaryData, SystemSummary,
    MAX_BODY,
};
