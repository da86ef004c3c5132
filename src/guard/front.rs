//! Each thread's few most recently used verified tokens, looked at before the shared
//! validation cache.
//!
//! The shared cache (moka) records every read for its eviction policy, in state all threads
//! share; when every core validates at once, the cores take turns owning those cache lines
//! and a hit costs two to four times what it costs on one thread (`cargo bench --bench
//! contention`). A thread asks its own small table first, which no other thread touches.
//!
//! It holds nothing the shared cache would not, and never longer: its entries are the shared
//! cache's own `Arc<Identity>` values, kept until the same deadline (`cached_until`), and the
//! caller re-checks a hit from here exactly as one from the shared cache (the clock, the key
//! set, then the registry), so a removed key, client or organisation is refused at once either
//! way. Each verifier has its own id, so a table never answers for another verifier (another
//! audience or issuer).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::verify::Identity;

/// Entries per thread, direct-mapped by the token's hash: a few clients' current tokens.
const SLOTS: usize = 64;

/// The next verifier's id.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(0);

struct Entry {
    owner: u64,
    key: [u8; 32],
    identity: Arc<Identity>,
}

thread_local! {
    static TABLE: RefCell<[Option<Entry>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

/// One verifier's view of every thread's table.
#[derive(Debug)]
pub struct Front {
    owner: u64,
}

impl Front {
    pub fn new() -> Self {
        Front {
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// This thread's entry for `key` (a SHA-256 of the token), unless past its deadline.
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Identity>> {
        TABLE.with_borrow(|table| match &table[slot(key)] {
            Some(e) if e.owner == self.owner && e.key == *key && fresh(&e.identity) => {
                Some(e.identity.clone())
            }
            _ => None,
        })
    }

    /// Remembers `identity` for `key` on this thread, in place of whatever held its slot.
    pub fn put(&self, key: [u8; 32], identity: &Arc<Identity>) {
        TABLE.with_borrow_mut(|table| {
            table[slot(&key)] = Some(Entry {
                owner: self.owner,
                key,
                identity: identity.clone(),
            });
        });
    }
}

fn fresh(identity: &Identity) -> bool {
    Instant::now() < identity.cached_until
}

/// The slot of `key`: its first bytes, already uniform (a hash).
fn slot(key: &[u8; 32]) -> usize {
    usize::from(key[0]) % SLOTS
}
