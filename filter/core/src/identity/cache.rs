//! Verified tokens, remembered per worker so a repeated token costs a hash
//! and a lookup instead of a signature check.
//!
//! Keyed by SHA-256 of the whole token (the token itself is never stored);
//! bounded, oldest evicted first; an entry is served only while `now` is
//! within the token's `exp` plus skew, so a hit never outlives the token.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use super::Identity;

pub const DEFAULT_CACHE_ENTRIES: usize = 1024;
pub(crate) const MAX_CACHE_ENTRIES: usize = 65_536;

type Key = [u8; 32];

#[derive(Debug)]
struct Entry {
    identity: Identity,
    valid_until: u64,
    seq: u64,
}

#[derive(Debug)]
pub(crate) struct TokenCache {
    capacity: usize,
    map: HashMap<Key, Entry>,
    /// Insertion order; pairs whose `seq` no longer matches the map are
    /// leftovers of removed entries and are skipped.
    order: VecDeque<(u64, Key)>,
    seq: u64,
}

fn key(token: &[u8]) -> Key {
    Sha256::digest(token).into()
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, map: HashMap::new(), order: VecDeque::new(), seq: 0 }
    }

    pub(crate) fn get(&mut self, token: &[u8], now_s: u64) -> Option<Identity> {
        if self.capacity == 0 {
            return None;
        }
        let k = key(token);
        let entry = self.map.get(&k)?;
        if now_s > entry.valid_until {
            self.map.remove(&k);
            return None;
        }
        Some(entry.identity.clone())
    }

    pub(crate) fn insert(&mut self, token: &[u8], identity: Identity, valid_until: u64) {
        if self.capacity == 0 {
            return;
        }
        let k = key(token);
        while self.map.len() >= self.capacity && !self.map.contains_key(&k) {
            let Some((seq, old)) = self.order.pop_front() else { break };
            if self.map.get(&old).is_some_and(|e| e.seq == seq) {
                self.map.remove(&old);
            }
        }
        self.seq = self.seq.wrapping_add(1);
        self.map.insert(k, Entry { identity, valid_until, seq: self.seq });
        self.order.push_back((self.seq, k));
        if self.order.len() > self.capacity.saturating_mul(2) {
            let map = &self.map;
            self.order.retain(|(seq, k)| map.get(k).is_some_and(|e| e.seq == *seq));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(sub: &str) -> Identity {
        Identity { subject: sub.into(), issuer: "i".into(), tenant: None, claims: serde_json::Value::Null }
    }

    #[test]
    fn bounded_and_oldest_first() {
        let mut c = TokenCache::new(2);
        c.insert(b"a", id("a"), 100);
        c.insert(b"b", id("b"), 100);
        c.insert(b"c", id("c"), 100);
        assert_eq!(c.len(), 2);
        assert!(c.get(b"a", 0).is_none());
        assert_eq!(c.get(b"b", 0).map(|i| i.subject), Some("b".into()));
        assert_eq!(c.get(b"c", 0).map(|i| i.subject), Some("c".into()));
    }

    #[test]
    fn entries_expire_and_order_stays_bounded() {
        let mut c = TokenCache::new(4);
        for round in 0..100u64 {
            c.insert(b"x", id("x"), round);
            assert!(c.get(b"x", round + 1).is_none());
        }
        assert!(c.order.len() <= 8);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn zero_capacity_disables() {
        let mut c = TokenCache::new(0);
        c.insert(b"a", id("a"), 100);
        assert!(c.get(b"a", 0).is_none());
    }
}
