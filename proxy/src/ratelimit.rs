//! Log lines about what peers send (dropped datagrams, refused connections) are rate-limited, so
//! a flood cannot turn into a flood of log lines.

use std::time::{Duration, Instant};

/// Lets one event through a second at most.
#[derive(Debug, Default)]
pub struct OncePerSecond {
    last: Option<Instant>,
}

impl OncePerSecond {
    /// Whether an event at `now` may be logged; if so, the next one may not for a second.
    pub fn due(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_a_second() {
        let t0 = Instant::now();
        let mut limit = OncePerSecond::default();
        assert!(limit.due(t0));
        assert!(!limit.due(t0 + Duration::from_millis(999)));
        assert!(limit.due(t0 + Duration::from_secs(1)));
    }
}
