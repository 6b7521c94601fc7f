//! srs-proxy as a library: the listeners and relays that the `srs-proxy` binary runs.
//!
//! Configuration is by environment variables only (docs/design.md §2); see [`config`]. Where each
//! protocol's code lives and which shared pieces it uses is in docs/design.md §1.

pub mod admission;
pub mod config;
pub mod http;
pub mod leases;
pub mod lifecycle;
pub mod loops;
pub mod memory;
pub mod metrics;
pub mod probe;
pub mod ratelimit;
pub mod rtc;
pub mod rtmp;
pub mod session;
pub mod srt;
pub mod state;
pub mod udp;
pub mod upstream;
