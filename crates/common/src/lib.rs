//! Pieces shared by `srs-proxy` and `srs-origin`: validation of environment variables
//! ([`env`]) and serving an axum router with bounded request heads ([`http`]).

pub mod env;
pub mod http;
