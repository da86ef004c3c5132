//! Client secrets: verification on a bounded blocking pool (they are made in
//! [`crate::registry::new_secret`]).
//!
//! argon2id is slow on purpose (tens of milliseconds of one core). Verification therefore runs
//! on its own `concurrency` threads, never on the proxy's event loop, and at a lower CPU
//! priority than the proxy ([`super::low_priority`]), so a flood of wrong secrets slows the
//! token endpoint, not the proxied routes; at most `queue_limit` more requests wait for a
//! thread, and past that the caller gets [`Overloaded`] (the token endpoint answers 503)
//! instead of an ever-growing queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use super::low_priority::LowPriorityPool;
use crate::metrics::metrics;
use crate::registry::new_secret::{generate_secret, hash_secret, hasher};

/// Too many token requests are already waiting for a verification slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

/// Runs argon2id verifications off the event loop with bounded concurrency and queue.
pub struct SecretVerifier {
    /// One permit per thread of `threads`: a holder always finds a thread free.
    permits: Arc<Semaphore>,
    threads: LowPriorityPool,
    waiting: AtomicUsize,
    queue_limit: usize,
    /// Hash of a random secret nobody knows: unknown client ids are verified against it so they
    /// cost the same time as a wrong secret (no client enumeration by timing).
    dummy_hash: String,
}

impl SecretVerifier {
    pub fn new(concurrency: usize, queue_limit: usize) -> Self {
        SecretVerifier {
            permits: Arc::new(Semaphore::new(concurrency)),
            threads: LowPriorityPool::new("credgate-argon2", concurrency)
                .expect("the secret verification threads start"),
            waiting: AtomicUsize::new(0),
            queue_limit,
            dummy_hash: hash_secret(&generate_secret()),
        }
    }

    /// Requests currently waiting for a verification slot.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Which of `hashes` (if any) `presented` matches. Every hash is checked, matched or not,
    /// so the time taken depends only on how many hashes there are; an empty list is checked
    /// against the dummy hash.
    ///
    /// `known` is asked first, once a thread is free: the verdict another request reached for
    /// the same secret while this one waited (the verified-secret cache). Many connections of
    /// one integration that start at once, or all find its cached verification expired at once,
    /// then cost one argon2 run instead of one each; under load each further run waits for the
    /// CPU the proxy leaves idle, so the last of them used to wait seconds.
    pub async fn find_match(
        &self,
        hashes: Vec<String>,
        presented: Zeroizing<String>,
        known: impl FnOnce() -> Option<usize>,
    ) -> Result<Verdict, Overloaded> {
        let permit = {
            let _queued = QueueSlot::take(&self.waiting, self.queue_limit)?;
            self.permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed")
        };
        if let Some(index) = known() {
            return Ok(Verdict::new(Some(index), false, Some(permit)));
        }
        metrics().secret_verifications.inc();
        let dummy = hashes.is_empty().then(|| self.dummy_hash.clone());
        // The permit travels with the job and comes back with its result, so it is given back
        // on the thread if nobody awaits the result any more (the client went away): a holder
        // always finds a thread free.
        let result = self.threads.run(move || {
            let candidates = dummy.as_ref().map_or(&hashes[..], std::slice::from_ref);
            let mut matched = None;
            for (i, hash) in candidates.iter().enumerate() {
                if argon2_matches(hash, &presented) && matched.is_none() {
                    matched = Some(i);
                }
            }
            let matched = if dummy.is_some() { None } else { matched };
            (matched, permit)
        });
        // A panic inside argon2 would be a bug; treat it as "no match" rather than crash.
        Ok(match result.await {
            Some((matched, permit)) => Verdict::new(matched, true, Some(permit)),
            None => Verdict::new(None, true, None),
        })
    }
}

/// What [`SecretVerifier::find_match`] found. It keeps the verification's place until dropped:
/// a caller that remembers a match first lets the requests waiting for that place find it
/// (`known`) instead of hashing the same secret again.
#[derive(Debug)]
pub struct Verdict {
    /// The index of the hash `presented` matched, if any.
    pub matched: Option<usize>,
    /// Whether argon2 ran for it; `false` when `known` answered, which is already remembered.
    pub hashed: bool,
    _place: Option<OwnedSemaphorePermit>,
}

impl Verdict {
    fn new(matched: Option<usize>, hashed: bool, place: Option<OwnedSemaphorePermit>) -> Self {
        Verdict {
            matched,
            hashed,
            _place: place,
        }
    }
}

fn argon2_matches(hash: &str, presented: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| hasher().verify_password(presented.as_bytes(), &h).is_ok())
}

/// A place in the verification queue, given back on drop (also when the waiting request is
/// cancelled because its client went away).
struct QueueSlot<'a>(&'a AtomicUsize);

impl<'a> QueueSlot<'a> {
    fn take(waiting: &'a AtomicUsize, limit: usize) -> Result<Self, Overloaded> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|n| {
                queue_gauge(n + 1);
                QueueSlot(waiting)
            })
            .map_err(|_| Overloaded)
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, Ordering::AcqRel);
        queue_gauge(before - 1);
    }
}

fn queue_gauge(depth: usize) {
    metrics().secret_verify_queue_depth.set(depth as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hash_as_argon2id() {
        let a = generate_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(*a, *generate_secret());
        let hash = hash_secret(&a);
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        crate::registry::validate::check_argon2id_hash(&hash).unwrap();
        assert!(argon2_matches(&hash, &a) && !argon2_matches(&hash, "wrong"));
    }

    /// `find_match` without a verdict known beforehand: what argon2 found.
    async fn verify(
        verifier: &SecretVerifier,
        hashes: Vec<String>,
        presented: &str,
    ) -> Result<Option<usize>, Overloaded> {
        let verdict = verifier.find_match(hashes, Zeroizing::new(presented.into()), || None);
        verdict.await.map(|v| v.matched)
    }

    #[tokio::test]
    async fn the_matching_hash_is_found_and_unknown_ids_never_match() {
        let verifier = SecretVerifier::new(2, 8);
        let hashes = vec![hash_secret("one"), hash_secret("two")];
        assert_eq!(verify(&verifier, hashes.clone(), "two").await, Ok(Some(1)));
        assert_eq!(verify(&verifier, hashes, "three").await, Ok(None));
        assert_eq!(verify(&verifier, vec![], "x").await, Ok(None));
        assert_eq!(verifier.queue_depth(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_not_grown() {
        let verifier = Arc::new(SecretVerifier::new(1, 1));
        let hold = verifier.permits.clone().acquire_owned().await.unwrap();
        let waiter = {
            let v = verifier.clone();
            tokio::spawn(async move { verify(&v, vec![], "x").await })
        };
        while verifier.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(verify(&verifier, vec![], "y").await, Err(Overloaded));
        drop(hold);
        assert_eq!(waiter.await.unwrap(), Ok(None));
        assert_eq!(verifier.queue_depth(), 0);
    }

    /// A verdict holds its place until dropped, and the request waiting for that place asks
    /// `known` only then: what the first remembered before dropping, the second finds, without
    /// argon2 (a wrong secret would not match the hash).
    #[tokio::test]
    async fn the_next_waiter_asks_what_is_known_once_the_verdict_before_it_is_dropped() {
        let verifier = Arc::new(SecretVerifier::new(1, 8));
        let hash = hash_secret("right");
        let first = verifier
            .find_match(vec![hash.clone()], Zeroizing::new("right".into()), || None)
            .await
            .unwrap();
        assert_eq!((first.matched, first.hashed), (Some(0), true));
        let remembered = Arc::new(std::sync::Mutex::new(None));
        let asked = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (v, remembered, asked) = (verifier.clone(), remembered.clone(), asked.clone());
            tokio::spawn(async move {
                let known = || {
                    asked.fetch_add(1, Ordering::SeqCst);
                    *remembered.lock().unwrap()
                };
                let verdict = v.find_match(vec![hash], Zeroizing::new("wrong".into()), known);
                verdict.await.map(|v| (v.matched, v.hashed))
            })
        };
        while verifier.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            asked.load(Ordering::SeqCst),
            0,
            "asked while the place was held"
        );
        *remembered.lock().unwrap() = first.matched;
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok((Some(0), false)));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }
}
