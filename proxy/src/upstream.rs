//! The one origin-selection path of every protocol (docs/design.md §5): pick the stream's owner,
//! connect to it with the protocol's own connect function, and when that origin turns out to be
//! unreachable set it aside in the store and pick again at once.
//!
//! A protocol plugs in only its connect step: RTMP dials TCP and opens the session, the HTTP
//! relays send the request and wait for the response head, a UDP protocol sends its handshake and
//! reports a handshake that timed out as [`ConnectError::Unreachable`]. An origin that accepts
//! the connection but stays silent ([`ConnectError::Timeout`]) is set aside the same way.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use srs_cluster::{OriginInfo, Protocol, StreamKey};
use srs_lb::{Store, StoreError};
use tracing::warn;

use crate::metrics::Metrics;

/// An error of any type, kept as the source of a [`ConnectError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which party a failure is attributed to, for logs, metrics and the client's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something the proxy cannot relay.
    Client,
    /// The origin is unreachable, failed, or answered too late.
    Origin,
    /// The load-balancer store has no origin for the stream, or is unavailable.
    Store,
}

/// How one connect attempt to one origin failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The origin could not be reached at all (TCP dial refused or timed out, a UDP handshake
    /// with no answer): evidence that it is gone, so it is set aside and another origin tried.
    #[error("origin {addr} unreachable")]
    Unreachable {
        /// The address dialled, `host:port`.
        addr: String,
        /// Why, e.g. the dial's I/O error.
        #[source]
        source: BoxError,
    },
    /// The origin was reached but did not answer within `after` (a handshake, a command
    /// exchange, a response head): a hung or overloaded origin, never the client's doing, so it
    /// is set aside and another origin tried, as for [`ConnectError::Unreachable`].
    #[error("origin {addr} did not answer within {after:?}")]
    Timeout {
        /// The address dialled.
        addr: String,
        /// How long the proxy waited.
        after: Duration,
    },
    /// The origin was reached and answered, but the session could not be opened (a failed
    /// handshake, a refused publish, a broken connection).
    #[error("origin {addr} failed")]
    Failed {
        /// The address dialled.
        addr: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// What the client asked for cannot be sent to any origin (e.g. a URL that does not parse
    /// once joined to the origin's address).
    #[error("bad request")]
    BadRequest(#[source] BoxError),
}

impl ConnectError {
    /// Whether another origin may succeed where this one failed: for an unreachable origin and
    /// for one that stayed silent.
    pub fn try_another_origin(&self) -> bool {
        matches!(
            self,
            ConnectError::Unreachable { .. } | ConnectError::Timeout { .. }
        )
    }

    /// The party the failure is attributed to.
    pub fn side(&self) -> Side {
        match self {
            ConnectError::BadRequest(_) => Side::Client,
            _ => Side::Origin,
        }
    }
}

/// Why no origin connection could be made for a request.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The store chose no origin (none offers the protocol, the owner lacks it) or is down.
    #[error("no origin available for {key}")]
    Store {
        /// The stream asked for.
        key: StreamKey,
        /// The store's answer.
        #[source]
        source: StoreError,
    },
    /// The chosen origin registered no endpoint for the protocol.
    #[error("origin {origin} has no {protocol} endpoint")]
    NoEndpoint {
        /// The origin's id.
        origin: String,
        /// The protocol asked for.
        protocol: Protocol,
    },
    /// The last origin tried failed; `attempts` origins were tried in all.
    #[error("{source} (after {attempts} origin(s))")]
    Connect {
        /// The id of the last origin tried.
        origin: String,
        /// Origins tried, this one included.
        attempts: usize,
        /// How the last attempt failed.
        #[source]
        source: ConnectError,
    },
}

impl UpstreamError {
    /// The party the failure is attributed to.
    pub fn side(&self) -> Side {
        match self {
            UpstreamError::Store { .. } => Side::Store,
            UpstreamError::NoEndpoint { .. } => Side::Origin,
            UpstreamError::Connect { source, .. } => source.side(),
        }
    }

    /// Whether the client may succeed by asking again later (another origin, the store back).
    pub fn retryable(&self) -> bool {
        match self {
            UpstreamError::Store { source, .. } => !matches!(
                source,
                StoreError::OwnerLacksProtocol { .. } | StoreError::NoOrigin { .. }
            ),
            UpstreamError::NoEndpoint { .. } => false,
            UpstreamError::Connect { source, .. } => source.side() == Side::Origin,
        }
    }

    /// The last connect failure, if the error came from an origin.
    pub fn connect_error(&self) -> Option<&ConnectError> {
        match self {
            UpstreamError::Connect { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The origin a connect attempt goes to.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The origin's id (`server/service/pid`).
    pub id: &'a str,
    /// Its endpoint for the protocol, `host:port`.
    pub addr: &'a str,
    /// Its registration, when it was just picked (absent for a pinned first attempt).
    pub info: Option<&'a OriginInfo>,
}

/// An origin to try before asking the store: where an existing session (an HLS `spbhid`) was
/// relayed to last time.
#[derive(Debug, Clone)]
pub struct Pinned {
    /// The origin's id.
    pub id: String,
    /// Its endpoint for the protocol, `host:port`.
    pub addr: String,
}

/// A connection made: to which origin, at which address, after how many attempts.
#[derive(Debug)]
pub struct Connected<C> {
    /// The origin's id.
    pub origin_id: String,
    /// The address connected to, `host:port`.
    pub addr: String,
    /// Origins tried, this one included (1 when the first one answered).
    pub attempts: usize,
    /// What the connect function returned.
    pub conn: C,
}

/// Origin selection with failover, shared by every protocol.
pub struct Upstream {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    set_aside: Duration,
    max_attempts: usize,
}

/// How long an origin whose dial failed is set aside (docs/design.md §5).
pub const SET_ASIDE: Duration = Duration::from_secs(15);
/// Origins tried for one request before giving up (each unreachable one is set aside).
pub const MAX_ATTEMPTS: usize = 3;

impl Upstream {
    /// Selection over `store`, setting unreachable origins aside for [`SET_ASIDE`] and trying at
    /// most [`MAX_ATTEMPTS`] origins per request.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Upstream {
            store,
            metrics,
            set_aside: SET_ASIDE,
            max_attempts: MAX_ATTEMPTS,
        }
    }

    /// The stream's owner ([`Store::pick`]), counting store outages in the metrics.
    async fn pick(&self, key: &StreamKey, protocol: Protocol) -> Result<OriginInfo, StoreError> {
        let picked = self.store.pick(key, protocol).await;
        if let Err(StoreError::Unavailable(_)) = &picked {
            self.metrics.store_failed();
        }
        picked
    }

    /// Connects the request for `key` to an origin offering `protocol`: `pinned` first when
    /// given, then the store's pick. An attempt that fails with [`ConnectError::Unreachable`] or
    /// [`ConnectError::Timeout`] sets its origin aside (for this proxy and every other one on the store) and the stream is
    /// picked again, up to [`MAX_ATTEMPTS`] origins; any other failure ends the request.
    ///
    /// Errors: [`UpstreamError::Store`] when the store has no origin or is down,
    /// [`UpstreamError::NoEndpoint`] for an origin without the protocol's endpoint,
    /// [`UpstreamError::Connect`] with the last attempt's failure.
    pub async fn connect<C, F, Fut>(
        &self,
        key: &StreamKey,
        protocol: Protocol,
        pinned: Option<Pinned>,
        mut connect: F,
    ) -> Result<Connected<C>, UpstreamError>
    where
        F: FnMut(Target<'_>) -> Fut,
        Fut: Future<Output = Result<C, ConnectError>>,
    {
        let mut pinned = pinned;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (id, addr, info) = match pinned.take() {
                Some(p) => (p.id, p.addr, None),
                None => {
                    let origin =
                        self.pick(key, protocol)
                            .await
                            .map_err(|source| UpstreamError::Store {
                                key: key.clone(),
                                source,
                            })?;
                    let Some(addr) = origin.endpoint(protocol).map(str::to_string) else {
                        return Err(UpstreamError::NoEndpoint {
                            origin: origin.id,
                            protocol,
                        });
                    };
                    (origin.id.clone(), addr, Some(origin))
                }
            };
            let target = Target {
                id: &id,
                addr: &addr,
                info: info.as_ref(),
            };
            match connect(target).await {
                Ok(conn) => {
                    return Ok(Connected {
                        origin_id: id,
                        addr,
                        attempts,
                        conn,
                    })
                }
                Err(e) if e.try_another_origin() => {
                    warn!(origin = %id, %addr, error = %ErrorChain(&e), "origin unreachable or silent; setting it aside");
                    self.origin_unreachable(&id).await;
                    if attempts >= self.max_attempts {
                        return Err(UpstreamError::Connect {
                            origin: id,
                            attempts,
                            source: e,
                        });
                    }
                }
                Err(e) => {
                    return Err(UpstreamError::Connect {
                        origin: id,
                        attempts,
                        source: e,
                    })
                }
            }
        }
    }

    /// Counts a failed dial (or a silent origin) and sets the origin aside (docs/design.md §5), so this and every
    /// other proxy re-pick its streams at once.
    async fn origin_unreachable(&self, origin_id: &str) {
        self.metrics.dial_failed();
        if let Err(e) = self.store.set_aside(origin_id, self.set_aside).await {
            warn!(origin = %origin_id, error = %e, "cannot set the origin aside");
        }
    }
}

/// Resolves once the client has closed its connection (EOF or a socket error), so the dial for
/// it stops; never while it is open, whatever it sends (that waits in the socket for the relay).
pub async fn client_gone(sock: &tokio::net::TcpStream) {
    let mut byte = [0u8; 1];
    match sock.peek(&mut byte).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// Displays an error with its chain of sources, `a: b: c`, for logs and client messages.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use srs_lb::{MemoryStore, StoreConfig};
    use std::sync::Mutex;

    fn origin(name: &str) -> OriginInfo {
        OriginInfo {
            rtmp: vec![format!("{name}:1935")],
            http: vec![format!("{name}:8080")],
            ..OriginInfo::new("127.0.0.1", name, "svc", "1")
        }
    }

    fn key() -> StreamKey {
        StreamKey::from_rtmp("rtmp://localhost/live", "s").unwrap()
    }

    async fn upstream(names: &[&str]) -> (Upstream, Arc<dyn Store>, Arc<Metrics>) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::with_config(StoreConfig::new(
            Duration::from_secs(30),
            None,
        )));
        for n in names {
            store.register(origin(n)).await.unwrap();
        }
        let metrics = Arc::new(Metrics::default());
        (
            Upstream::new(store.clone(), metrics.clone()),
            store,
            metrics,
        )
    }

    fn unreachable(addr: &str) -> ConnectError {
        ConnectError::Unreachable {
            addr: addr.into(),
            source: "connection refused".into(),
        }
    }

    #[tokio::test]
    async fn unreachable_origin_is_set_aside_and_another_picked() {
        let (up, store, _) = upstream(&["a", "b"]).await;
        let tried = Mutex::new(Vec::new());
        let first = store.pick(&key(), Protocol::Rtmp).await.unwrap();
        let connected = up
            .connect(&key(), Protocol::Rtmp, None, |t| {
                tried.lock().unwrap().push(t.id.to_string());
                let result = if t.id == first.id {
                    Err(unreachable(t.addr))
                } else {
                    Ok(t.addr.to_string())
                };
                async move { result }
            })
            .await
            .unwrap();
        assert_eq!(connected.attempts, 2);
        assert_ne!(connected.origin_id, first.id);
        assert_eq!(connected.conn, connected.addr);
        assert_eq!(tried.lock().unwrap().len(), 2);
        let status = store.origins().await.unwrap();
        let aside: Vec<_> = status
            .iter()
            .filter(|s| s.aside)
            .map(|s| &s.info.id)
            .collect();
        assert_eq!(aside, [&first.id]);
        // The stream moved for everyone: the store's owner is the origin that answered.
        let owner = store.pick(&key(), Protocol::Rtmp).await.unwrap();
        assert_eq!(owner.id, connected.origin_id);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let (up, _, metrics) = upstream(&["a", "b", "c", "d"]).await;
        let err = up
            .connect::<(), _, _>(&key(), Protocol::Rtmp, None, |t| {
                let e = unreachable(t.addr);
                async move { Err(e) }
            })
            .await
            .unwrap_err();
        let UpstreamError::Connect { attempts, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(*attempts, MAX_ATTEMPTS);
        assert_eq!(err.side(), Side::Origin);
        assert!(err.retryable());
        assert!(
            ErrorChain(&err).to_string().contains("connection refused"),
            "{}",
            ErrorChain(&err)
        );
        assert!(metrics
            .encode(&[], &srs_lb::StoreHealth::memory())
            .contains("srs_proxy_origin_dial_failures_total 3"));
    }

    #[tokio::test]
    async fn other_failures_are_not_retried_elsewhere() {
        let (up, store, _) = upstream(&["a", "b"]).await;
        let calls = Mutex::new(0);
        let err = up
            .connect::<(), _, _>(&key(), Protocol::Rtmp, None, |t| {
                *calls.lock().unwrap() += 1;
                let e = ConnectError::Failed {
                    addr: t.addr.into(),
                    source: "publish refused".into(),
                };
                async move { Err(e) }
            })
            .await
            .unwrap_err();
        assert_eq!(*calls.lock().unwrap(), 1);
        assert!(matches!(
            err.connect_error(),
            Some(ConnectError::Failed { .. })
        ));
        assert!(store.origins().await.unwrap().iter().all(|s| !s.aside));
    }

    #[tokio::test]
    async fn a_silent_origin_is_set_aside_like_an_unreachable_one() {
        let (up, store, _) = upstream(&["a", "b"]).await;
        let first = store.pick(&key(), Protocol::Rtmp).await.unwrap();
        let connected = up
            .connect(&key(), Protocol::Rtmp, None, |t| {
                let result = if t.id == first.id {
                    Err(ConnectError::Timeout {
                        addr: t.addr.into(),
                        after: Duration::from_secs(10),
                    })
                } else {
                    Ok(())
                };
                async move { result }
            })
            .await
            .unwrap();
        assert_eq!(connected.attempts, 2);
        assert_ne!(connected.origin_id, first.id);
        let status = store.origins().await.unwrap();
        assert!(status.iter().any(|s| s.aside && s.info.id == first.id));
    }

    #[tokio::test]
    async fn pinned_origin_is_tried_first_then_the_owner() {
        let (up, store, _) = upstream(&["a"]).await;
        let pinned = Pinned {
            id: "gone/svc/1".into(),
            addr: "gone:8080".into(),
        };
        let tried = Mutex::new(Vec::new());
        let connected = up
            .connect(&key(), Protocol::Http, Some(pinned), |t| {
                tried
                    .lock()
                    .unwrap()
                    .push((t.addr.to_string(), t.info.is_some()));
                let result = if t.addr == "gone:8080" {
                    Err(unreachable(t.addr))
                } else {
                    Ok(())
                };
                async move { result }
            })
            .await
            .unwrap();
        assert_eq!(connected.origin_id, "a/svc/1");
        assert_eq!(connected.addr, "a:8080");
        assert_eq!(
            *tried.lock().unwrap(),
            [
                ("gone:8080".to_string(), false),
                ("a:8080".to_string(), true)
            ]
        );
        assert_eq!(store.origins().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn store_errors_say_so() {
        let (up, _, _) = upstream(&[]).await;
        let err = up
            .connect::<(), _, _>(&key(), Protocol::Rtmp, None, |_| async { Ok(()) })
            .await
            .unwrap_err();
        assert_eq!(err.side(), Side::Store);
        assert!(!err.retryable());
        assert_eq!(
            ErrorChain(&err).to_string(),
            "no origin available for __defaultVhost__/live/s: no live origin offers rtmp"
        );
    }

    #[tokio::test]
    async fn a_bad_request_is_the_clients_fault() {
        let (up, _, _) = upstream(&["a"]).await;
        let err = up
            .connect::<(), _, _>(&key(), Protocol::Http, None, |_| async {
                Err(ConnectError::BadRequest("bad URL".into()))
            })
            .await
            .unwrap_err();
        assert_eq!(err.side(), Side::Client);
        assert!(!err.retryable());
    }
}
