//! Load balancing for srs-proxy: stream identity (SPEC §4), origin registration (SPEC §3) and
//! the store that chooses the origin for each stream (SPEC §5).

pub mod endpoint;
pub mod key;
pub mod register;
pub mod store;

pub use endpoint::{Endpoint, EndpointError};
pub use key::{query_param, vhost_from_host, KeyError, SrtMode, StreamKey, DEFAULT_VHOST};
pub use register::{parse_register, OriginInfo, RegisterError};
pub use store::{MemoryStore, OriginStatus, Protocol, Store, StoreError};
