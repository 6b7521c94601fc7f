//! The flow table of a UDP listener (docs/design.md §8): one entry per client address (or any
//! other key, such as a WebRTC session's ICE username), bounded in size, each forgotten after an
//! idle period. Time is passed in (`now`), so the table is tested
//! without sleeping.
//!
//! Touching a flow on every datagram only stores `now`; deadlines live in a min-heap with one
//! entry per flow, re-scheduled lazily when a popped deadline finds the flow used since. In the
//! steady state (flows come and go within the table's capacity) nothing is allocated per packet.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The table holds [`FlowTable::capacity`] flows already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the flow table is full ({capacity} flows)")]
pub struct TableFull {
    /// The table's capacity.
    pub capacity: usize,
}

struct Flow<V> {
    value: V,
    last_seen: Instant,
    /// Tells this flow's heap entry from those of an earlier flow of the same address.
    generation: u64,
}

/// Flows keyed by the client's address (or another `K`), at most `capacity`, expiring `idle`
/// after last use.
pub struct FlowTable<V, K = SocketAddr> {
    flows: HashMap<K, Flow<V>>,
    deadlines: BinaryHeap<Reverse<(Instant, u64, K)>>,
    capacity: usize,
    idle: Duration,
    next_generation: u64,
}

impl<V, K: Hash + Ord + Clone> FlowTable<V, K> {
    /// An empty table of at most `capacity` flows, each expiring `idle` after its last use.
    pub fn new(capacity: usize, idle: Duration) -> Self {
        FlowTable {
            flows: HashMap::new(),
            deadlines: BinaryHeap::new(),
            capacity,
            idle,
            next_generation: 0,
        }
    }

    /// Flows in the table.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether the table has no flow.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The most flows the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The flow of `addr`, marked as used at `now`.
    pub fn get_mut<Q>(&mut self, addr: &Q, now: Instant) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let flow = self.flows.get_mut(addr)?;
        flow.last_seen = flow.last_seen.max(now);
        Some(&mut flow.value)
    }

    /// The flow of `addr`, without marking it used.
    pub fn get<Q>(&self, addr: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.flows.get(addr).map(|f| &f.value)
    }

    /// Adds a flow for `addr` used at `now`, replacing the one it had.
    ///
    /// Errors: [`TableFull`] when `addr` has no flow and the table holds `capacity` flows.
    pub fn insert(&mut self, addr: K, value: V, now: Instant) -> Result<&mut V, TableFull> {
        if !self.flows.contains_key(&addr) && self.flows.len() >= self.capacity {
            return Err(TableFull {
                capacity: self.capacity,
            });
        }
        self.compact();
        let generation = self.next_generation;
        self.next_generation += 1;
        self.deadlines
            .push(Reverse((now + self.idle, generation, addr.clone())));
        let flow = Flow {
            value,
            last_seen: now,
            generation,
        };
        let slot = match self.flows.entry(addr) {
            Entry::Occupied(mut e) => {
                e.insert(flow);
                e.into_mut()
            }
            Entry::Vacant(e) => e.insert(flow),
        };
        Ok(&mut slot.value)
    }

    /// Removes the flow of `addr` (a session that ended), returning it.
    pub fn remove<Q>(&mut self, addr: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.flows.remove(addr).map(|f| f.value)
    }

    /// Removes every flow idle for the table's idle period at `now`, handing each to `expired`.
    pub fn expire(&mut self, now: Instant, mut expired: impl FnMut(K, V)) {
        while let Some(Reverse((deadline, _, _))) = self.deadlines.peek() {
            if *deadline > now {
                break;
            }
            let Some(Reverse((_, generation, addr))) = self.deadlines.pop() else {
                break;
            };
            let Some(flow) = self.flows.get(&addr) else {
                continue;
            };
            if flow.generation != generation {
                continue;
            }
            let due = flow.last_seen + self.idle;
            if due <= now {
                if let Some(flow) = self.flows.remove(&addr) {
                    expired(addr, flow.value);
                }
            } else {
                self.deadlines.push(Reverse((due, generation, addr)));
            }
        }
    }

    /// The earliest instant at which [`FlowTable::expire`] may find work; it may find none then
    /// (the flow was used since) and re-schedule.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Drops heap entries of removed or replaced flows once they outnumber the live ones, so
    /// the heap stays within twice the table's size.
    fn compact(&mut self) {
        if self.deadlines.len() <= 2 * self.flows.len().max(16) {
            return;
        }
        let flows = &self.flows;
        self.deadlines
            .retain(|Reverse((_, g, a))| flows.get(a).is_some_and(|f| f.generation == *g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const IDLE: Duration = Duration::from_secs(10);

    #[test]
    fn flows_expire_after_idle_unless_used() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(8, IDLE);
        table.insert(addr(1), "a", t0).unwrap();
        table.insert(addr(2), "b", t0).unwrap();
        assert_eq!(table.next_deadline(), Some(t0 + IDLE));
        // `a` is used at 6 s; only `b` is idle at 10 s.
        assert_eq!(
            table.get_mut(&addr(1), t0 + Duration::from_secs(6)),
            Some(&mut "a")
        );
        let mut gone = Vec::new();
        table.expire(t0 + IDLE, |a, v| gone.push((a, v)));
        assert_eq!(gone, [(addr(2), "b")]);
        assert_eq!(table.len(), 1);
        // Re-scheduled to 16 s, not sooner.
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(16)));
        table.expire(t0 + Duration::from_secs(15), |a, v| gone.push((a, v)));
        assert_eq!(gone.len(), 1);
        table.expire(t0 + Duration::from_secs(16), |a, v| gone.push((a, v)));
        assert_eq!(gone, [(addr(2), "b"), (addr(1), "a")]);
        assert!(table.is_empty());
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn capacity_is_enforced_but_replacing_is_allowed() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(2, IDLE);
        table.insert(addr(1), 1, t0).unwrap();
        table.insert(addr(2), 2, t0).unwrap();
        assert_eq!(table.insert(addr(3), 3, t0), Err(TableFull { capacity: 2 }));
        *table.insert(addr(2), 20, t0).unwrap() += 1;
        assert_eq!(table.get(&addr(2)), Some(&21));
        assert_eq!(table.remove(&addr(1)), Some(1));
        table.insert(addr(3), 3, t0).unwrap();
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_removed_flows_deadline_does_not_expire_its_successor() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(4, IDLE);
        table.insert(addr(1), "old", t0).unwrap();
        table.remove(&addr(1));
        table
            .insert(addr(1), "new", t0 + Duration::from_secs(5))
            .unwrap();
        let mut gone = Vec::new();
        table.expire(t0 + IDLE, |a, v| gone.push((a, v)));
        assert!(gone.is_empty());
        table.expire(t0 + Duration::from_secs(15), |a, v| gone.push((a, v)));
        assert_eq!(gone, [(addr(1), "new")]);
    }

    #[test]
    fn churn_keeps_the_heap_bounded() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(4, IDLE);
        for i in 0..10_000u16 {
            table.insert(addr(i % 4), i, t0).unwrap();
            if i % 3 == 0 {
                table.remove(&addr(i % 4));
            }
        }
        assert!(table.deadlines.len() <= 40, "{}", table.deadlines.len());
        let live = table.len();
        let mut gone = 0;
        table.expire(t0 + IDLE, |_, _| gone += 1);
        assert_eq!(gone, live);
        assert!(table.is_empty());
    }
}
