//! Load balancing for srs-proxy: stream identity (SPEC §4), origin registration (SPEC §3) and
//! the stores that choose the origin for each stream (SPEC §5): in memory for one proxy, in Redis
//! for many.

pub mod endpoint;
pub mod key;
pub mod redis;
pub mod register;
pub mod store;

pub use crate::redis::{RedisSettings, RedisStore};
pub use endpoint::{Endpoint, EndpointError};
pub use key::{query_param, vhost_from_host, KeyError, SrtMode, StreamKey, DEFAULT_VHOST};
pub use register::{parse_register, OriginInfo, RegisterError};
pub use store::{
    HlsSession, MemoryStore, OriginStatus, Protocol, RtcSession, Store, StoreConfig, StoreError,
};
