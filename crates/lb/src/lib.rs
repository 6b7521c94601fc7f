//! Load balancing for srs-proxy: the stores that choose the origin for each stream
//! (docs/design.md §5) and keep the session records every proxy must see, in memory for one
//! proxy, in Redis for many (docs/design.md §9). Stream keys, origins and protocols come from
//! `srs_cluster`.

pub mod redis;
pub mod store;

pub use crate::redis::{RedisSettings, RedisStore, Topology};
pub use store::{
    MemoryStore, OriginStatus, Registered, SessionKind, SessionRecord, Store, StoreConfig,
    StoreError, StoreHealth,
};
