//! The store's tests and bench on a real `redis-server` from `srs-test-support`.

pub use srs_test_support::Redis as RedisServer;

/// Store settings for a test server.
pub trait Settings {
    /// Settings for a store on this server (default prefix, no password, db 0).
    fn settings(&self) -> srs_lb::RedisSettings;
}

impl Settings for RedisServer {
    fn settings(&self) -> srs_lb::RedisSettings {
        srs_lb::RedisSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            ..srs_lb::RedisSettings::default()
        }
    }
}
