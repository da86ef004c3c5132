//! Each thread's few most recently used verified tokens, looked at before the shared
//! validation cache.
//!
//! The shared cache (moka) records every read for its eviction policy, in state all threads
//! share; when every core validates at once, the cores take turns owning those cache lines
//! and a hit costs two to four times what it costs on one thread (`cargo bench --bench
//! contention`). A thread asks its own small table first, which no other thread touches.
//!
//! An entry is found by the token itself, not by its SHA-256 as in the shared cache: hashing
//! a token of several hundred bytes was half of what a cache hit cost (`validate/cache_hit`
//! against `sha256_token` in the same bench), and a thread's table is small enough to hold the
//! tokens. A slot is picked by the token's last bytes (its signature's, uniform for tokens
//! credgate signed) and the whole token is compared in constant time, so a token that differs
//! in any byte is never answered from here, and the time a comparison takes tells nothing of
//! the token held.
//!
//! It holds nothing the shared cache would not, and never longer: its entries are copies of
//! the shared cache's own, kept until the same deadline (`cached_until`), and the
//! caller re-checks a hit from here exactly as one from the shared cache (the clock, the key
//! set, then the registry), so a removed key, client or organisation is refused at once either
//! way. Each verifier has its own id, so a table never answers for another verifier (another
//! audience or issuer).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::constant_time::verify_slices_are_equal;

use super::verify::Identity;

/// Entries per thread, direct-mapped by the token's last bytes: a few clients' current tokens.
const SLOTS: usize = 64;
const _: () = assert!(SLOTS.is_power_of_two());

/// Longer tokens are left to the shared cache, so a thread's table holds at most
/// `SLOTS` × 4 KiB of tokens (credgate's own are well under 2 KiB, even with many scopes).
pub const MAX_TOKEN: usize = 4096;

/// The next verifier's id.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(0);

struct Entry {
    owner: u64,
    token: Vec<u8>,
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

    /// This thread's entry for exactly `token`, unless past its deadline.
    pub fn get(&self, token: &[u8]) -> Option<Arc<Identity>> {
        TABLE.with_borrow(|table| match &table[slot(token)] {
            Some(e) if e.owner == self.owner && same(&e.token, token) && fresh(&e.identity) => {
                Some(e.identity.clone())
            }
            _ => None,
        })
    }

    /// Remembers `identity` for `token` on this thread, in place of whatever held its slot
    /// (whose buffer it reuses), and returns the thread's own copy to use in its place; a
    /// token longer than [`MAX_TOKEN`] is not remembered.
    ///
    /// The copy is this thread's alone: a request on one core cloning and dropping the
    /// `Arc` never bounces its reference count off another core doing the same.
    pub fn put(&self, token: &[u8], identity: &Arc<Identity>) -> Arc<Identity> {
        if token.len() > MAX_TOKEN {
            return identity.clone();
        }
        let own = Arc::new(Identity::clone(identity));
        TABLE.with_borrow_mut(|table| match &mut table[slot(token)] {
            Some(entry) => {
                entry.owner = self.owner;
                entry.token.clear();
                entry.token.extend_from_slice(token);
                entry.identity = own.clone();
            }
            empty => {
                *empty = Some(Entry {
                    owner: self.owner,
                    token: token.to_vec(),
                    identity: own.clone(),
                })
            }
        });
        own
    }
}

/// Whether `held` and `token` are the same bytes, in a time that depends on their lengths
/// only.
fn same(held: &[u8], token: &[u8]) -> bool {
    verify_slices_are_equal(held, token).is_ok()
}

fn fresh(identity: &Identity) -> bool {
    Instant::now() < identity.cached_until
}

/// The slot of `token`: its last eight bytes (in the signature), mixed by a multiplication
/// whose top bits pick one of the `SLOTS`.
fn slot(token: &[u8]) -> usize {
    let tail = &token[token.len().saturating_sub(8)..];
    let mut word = [0; 8];
    word[..tail.len()].copy_from_slice(tail);
    let mixed = u64::from_le_bytes(word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (u64::BITS - SLOTS.trailing_zeros())) as usize
}
