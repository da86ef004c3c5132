//! Worker threads at a lower CPU priority than the proxy's, for argon2id.
//!
//! Running argon2id off the event loop (tokio's blocking pool) keeps it from stalling the
//! proxy, but on a machine with few cores it still competes for them as an equal: under a flood
//! of wrong secrets one core hashes all the time and every proxied request waits its turn for
//! the other. These threads run under Linux's `SCHED_IDLE` policy (sched(7)): the scheduler
//! hands them the CPU the proxy leaves idle, and a proxy thread that wakes (a socket became
//! readable) takes the core from a hashing thread at once instead of waiting out its time
//! slice, which a thread at a mere lower nice value may finish first. Verification still
//! progresses while the proxy is busy: idle-policy threads keep a small weight and run in every
//! gap the proxy's I/O waits leave. They are also reniced to +10 first, about a tenth of a normal
//! thread's CPU weight, which is what holds where the policy is refused (a sandbox filtering
//! `sched_setscheduler`). Both are set once, when a thread starts; undoing them would need
//! privileges the gateway does not have.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// How much lower than the proxy's threads these run where `SCHED_IDLE` is refused (nice +10:
/// about a tenth of the CPU weight of a nice 0 thread).
pub const NICENESS: libc::c_int = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads taking jobs in turn; they end when the pool is dropped.
pub struct LowPriorityPool {
    jobs: Sender<Job>,
}

impl LowPriorityPool {
    /// Starts `threads` threads named `name`.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || work(&queue))?;
        }
        Ok(LowPriorityPool { jobs })
    }

    /// Runs `job` on one of the threads; its result, or `None` if it panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(job());
        });
        self.jobs.send(job).ok()?;
        result.await.ok()
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let next = queue.lock().map(|q| q.recv());
        let Ok(Ok(job)) = next else {
            return; // the pool is gone
        };
        // A panicking job drops its result sender (the caller sees `None`); the thread lives on.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

/// Lowers the calling thread's nice value by [`NICENESS`], then moves it to `SCHED_IDLE`,
/// which ignores the nice value: where the policy is refused, the nice value is what holds.
/// Best effort: what fails is logged and leaves the thread as it was in that respect.
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let reniced = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICENESS)
    };
    if reniced != 0 {
        warn_unlowered("nice", std::io::Error::last_os_error());
    }
    let idle = libc::sched_param { sched_priority: 0 };
    // SAFETY: `idle` outlives the call, which only reads it; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) } != 0 {
        warn_unlowered("SCHED_IDLE", std::io::Error::last_os_error());
    }
}

/// Logs that lowering the priority `how` (nice or `SCHED_IDLE`) failed with `error`.
fn warn_unlowered(how: &str, error: std::io::Error) {
    tracing::warn!(%error, how, "cannot lower the priority of the secret verification threads");
}

/// The nice value of the calling thread.
#[cfg(test)]
fn own_niceness() -> libc::c_int {
    // SAFETY: as above.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

/// The scheduling policy of the calling thread.
#[cfg(test)]
fn own_policy() -> libc::c_int {
    // SAFETY: a plain query of the calling thread (pid 0).
    unsafe { libc::sched_getscheduler(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_at_idle_priority_and_survive_a_panic() {
        let pool = LowPriorityPool::new("test-low", 1).unwrap();
        let base = own_niceness();
        assert_ne!(
            own_policy(),
            libc::SCHED_IDLE,
            "the caller keeps its policy"
        );
        assert_eq!(pool.run(own_policy).await, Some(libc::SCHED_IDLE));
        let niceness = pool.run(own_niceness).await.unwrap();
        assert_eq!(
            niceness,
            (base + NICENESS).min(19),
            "the fallback holds too"
        );
        assert_eq!(pool.run(|| -> u8 { panic!("a bug") }).await, None);
        assert_eq!(pool.run(|| 7).await, Some(7), "the thread lives on");
    }
}
