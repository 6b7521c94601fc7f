//! srs-proxy as a library: the listeners and relays that the `srs-proxy` binary runs.
//!
//! Configuration is by environment variables only (SPEC §2); see [`config`].

pub mod api;
pub mod config;
pub mod hls;
pub mod http_stream;
pub mod leases;
pub mod lifecycle;
pub mod metrics;
pub mod rtmp;
pub mod state;
