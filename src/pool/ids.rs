//! The pool's maps keyed by task and waiter ids.
//!
//! The ids are counters the pool hands out itself, so they need no defence
//! against chosen keys; a multiply spreads them over a hash table at a
//! fraction of SipHash's cost, which shows on the per-task path. Tasks and
//! finished results, the maps that grow with a backlog, live in a
//! [`SeqMap`] instead, indexed by id.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by a pool-made id.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of one `u64`.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map from task ids, which the pool hands out in increasing order, kept
/// mostly in a ring indexed by id: with many tasks pending, a lookup touches
/// memory near the last one instead of a random slot of a large hash table
/// (a cache miss per lookup, several per task). Ids that fall outside the
/// ring (inserted after the ring moved past them, or left behind by a task
/// that outlives many later ones) live in a small hash map beside it, so the
/// ring never holds much more than the pending tasks.
pub(crate) struct SeqMap<V> {
    /// Id of `ring[0]`.
    base: u64,
    ring: std::collections::VecDeque<Option<V>>,
    /// Occupied slots of the ring.
    in_ring: usize,
    aside: IdMap<V>,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap {
            base: 0,
            ring: std::collections::VecDeque::new(),
            in_ring: 0,
            aside: IdMap::default(),
        }
    }
}

/// Farthest ahead of the ring's start an id may be to go in the ring.
const MAX_GAP: u64 = 1 << 16;

impl<V> SeqMap<V> {
    pub(crate) fn len(&self) -> usize {
        self.in_ring + self.aside.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, id: u64) -> Option<usize> {
        let at = id.checked_sub(self.base)?;
        (at < self.ring.len() as u64).then_some(at as usize)
    }

    pub(crate) fn insert(&mut self, id: u64, value: V) {
        if self.ring.is_empty() {
            self.base = id;
        }
        match id.checked_sub(self.base) {
            Some(at) if at < self.ring.len() as u64 + MAX_GAP => {
                let at = at as usize;
                if at >= self.ring.len() {
                    self.ring.resize_with(at + 1, || None);
                }
                if self.ring[at].replace(value).is_none() {
                    self.in_ring += 1;
                }
            }
            _ => {
                self.aside.insert(id, value);
            }
        }
    }

    // An id put aside for being far ahead may later fall inside the ring
    // (which grew towards it): an empty ring slot always looks aside too.

    pub(crate) fn get(&self, id: &u64) -> Option<&V> {
        match self.slot(*id).and_then(|at| self.ring[at].as_ref()) {
            Some(v) => Some(v),
            None => self.aside.get(id),
        }
    }

    pub(crate) fn get_mut(&mut self, id: &u64) -> Option<&mut V> {
        match self.slot(*id).filter(|&at| self.ring[at].is_some()) {
            Some(at) => self.ring[at].as_mut(),
            None => self.aside.get_mut(id),
        }
    }

    pub(crate) fn remove(&mut self, id: &u64) -> Option<V> {
        let Some(at) = self.slot(*id).filter(|&at| self.ring[at].is_some()) else {
            return self.aside.remove(id);
        };
        let value = self.ring[at].take()?;
        self.in_ring -= 1;
        // Move the start past empty slots, and past old entries once the
        // ring is mostly empty (they go aside), so it stays small.
        loop {
            let sparse = self.ring.len() > 64 && self.in_ring * 4 < self.ring.len();
            match self.ring.front() {
                None => break,
                Some(Some(_)) if !sparse => break,
                _ => {}
            }
            if let Some(Some(old)) = self.ring.pop_front() {
                self.in_ring -= 1;
                self.aside.insert(self.base, old);
            }
            self.base += 1;
        }
        Some(value)
    }

    /// Every id in the map, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        let base = self.base;
        self.ring
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_some())
            .map(move |(i, _)| base + i as u64)
            .chain(self.aside.keys().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map_for_ids_in_order_out_of_order_and_far_apart() {
        let mut m: SeqMap<u64> = SeqMap::default();
        let mut model = std::collections::HashMap::new();
        // Mostly increasing ids, some late, some far ahead; removals in
        // another order; one old id (0) that stays while many come and go.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = 1u64;
        m.insert(0, 0);
        model.insert(0, 0);
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = match x % 10 {
                0 if next > 5 => next - 5,   // late (maybe already there)
                1 => next + MAX_GAP + x % 9, // far ahead
                _ => {
                    next += 1;
                    next
                }
            };
            if let std::collections::hash_map::Entry::Vacant(e) = model.entry(id) {
                e.insert(step);
                m.insert(id, step);
            }
            if x % 4 != 0 {
                let victim = next.saturating_sub(x % 40);
                if victim != 0 {
                    assert_eq!(m.remove(&victim), model.remove(&victim), "remove {victim}");
                }
            }
            assert_eq!(m.len(), model.len());
        }
        for (id, v) in &model {
            assert_eq!(m.get(id), Some(v));
        }
        let mut keys: Vec<u64> = m.keys().collect();
        keys.sort_unstable();
        let mut want: Vec<u64> = model.keys().copied().collect();
        want.sort_unstable();
        assert_eq!(keys, want);
        assert!(m.get(&0).is_some(), "the old entry survived");

        // An id put aside for being far ahead, then covered by the ring as
        // it grows towards it step by step, is still found.
        let mut m: SeqMap<u64> = SeqMap::default();
        let far = MAX_GAP + 100;
        m.insert(1, 1);
        m.insert(far, far);
        for id in (2..far + 10).step_by(1000) {
            m.insert(id, id);
        }
        m.insert(far + 1, far + 1);
        assert!(
            m.slot(far).is_some(),
            "the ring now covers the id put aside"
        );
        assert_eq!(m.get(&far), Some(&far));
        assert_eq!(m.get_mut(&far).copied(), Some(far));
        assert_eq!(m.remove(&far), Some(far));
        assert_eq!(m.get(&far), None);
        assert!(m.ring.len() <= 4 * m.in_ring.max(16) + MAX_GAP as usize);
    }
}
