//! Stateless SYN cookies for a listener's induction (draft-sharabayko-srt 4.3.1.1): the cookie is a
//! keyed hash of the caller's address and port and a coarse time step, so the listener keeps no
//! state for an induction and can still check that a conclusion answers one of its own inductions,
//! recently.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long one time step lasts; a cookie is accepted during its step and the next one.
pub const COOKIE_STEP: Duration = Duration::from_secs(60);

/// Makes and checks SYN cookies with a secret key drawn at random for this process.
pub struct CookieJar {
    /// SipHash keyed with random keys (std's `RandomState`): the per-process secret.
    key: std::collections::hash_map::RandomState,
    epoch: Instant,
}

impl CookieJar {
    /// A jar with a fresh random key; time steps count from `now`.
    pub fn new(now: Instant) -> CookieJar {
        CookieJar {
            key: std::collections::hash_map::RandomState::new(),
            epoch: now,
        }
    }

    fn step(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / COOKIE_STEP.as_secs()
    }

    fn at_step(&self, peer: SocketAddr, step: u64) -> u32 {
        let mut h = self.key.build_hasher();
        peer.hash(&mut h);
        step.hash(&mut h);
        let v = h.finish();
        (v ^ (v >> 32)) as u32
    }

    /// The cookie for an induction from `peer` at `now`.
    pub fn cookie(&self, peer: SocketAddr, now: Instant) -> u32 {
        self.at_step(peer, self.step(now))
    }

    /// Whether `cookie` is one this jar gave `peer` in the current or the previous time step.
    pub fn check(&self, peer: SocketAddr, cookie: u32, now: Instant) -> bool {
        let step = self.step(now);
        self.at_step(peer, step) == cookie || (step > 0 && self.at_step(peer, step - 1) == cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_per_peer_and_expire() {
        let t0 = Instant::now();
        let jar = CookieJar::new(t0);
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let c = jar.cookie(a, t0);
        assert!(jar.check(a, c, t0));
        assert!(jar.check(a, c, t0 + COOKIE_STEP + Duration::from_secs(30)));
        assert!(!jar.check(a, c, t0 + COOKIE_STEP * 2));
        assert!(!jar.check(b, c, t0));
        assert_ne!(jar.cookie(a, t0), jar.cookie(b, t0));
        // Another process (another key) does not accept it.
        assert!(!CookieJar::new(t0).check(a, c, t0));
    }
}
