//! Where every log line goes: stderr, written by a thread of its own while credgate serves.
//!
//! Written from the thread that serves requests, each request line would be one `write(2)` on
//! the event loop, and when stderr is a pipe whose reader stalls (journald under its rate
//! limit, a container runtime's log driver, `| tee` to a slow disk) that write blocks: once the
//! pipe's 64 KiB are full, every connection of that thread waits for the log. So once serving
//! starts ([`start`]), a line is copied into a queue in memory (a mutex held for the copy
//! alone) and one thread writes what has gathered, with one `write` call: at once after a quiet
//! spell, every [`GATHER`] under load, so the system calls no longer grow with the requests.
//!
//! Nothing is lost for a slow reader, and a stuck one costs lines, never requests: the queue
//! holds up to [`CAPACITY`] bytes, and past that a line is dropped and counted
//! (`credgate_log_lines_dropped_total`, and one WARN line once writing resumes). Whatever is
//! queued is written before the process exits through `exit` (SIGTERM's drain, SIGINT, the
//! end of the grace period), waiting at most [`EXIT_FLUSH_LIMIT`] for a stuck reader.
//!
//! Lines keep their order (one queue, one writer) and stay whole: each is queued in one piece.

use std::io::{self, Write};
use std::sync::{Condvar, Mutex, MutexGuard, Once, OnceLock, PoisonError};
use std::time::Duration;

use crate::metrics::metrics;

/// How much may wait to be written (about two seconds of request lines at full load on two
/// cores): enough to ride out a slow reader, bounded against a stuck one.
pub const CAPACITY: usize = 16 << 20;
/// How long lines gather under load before they are written together.
pub const GATHER: Duration = Duration::from_millis(5);
/// A batch this large is written at once, without waiting for [`GATHER`] to pass.
const BATCH: usize = 64 << 10;
/// How long an exiting process waits for the queued lines to be written.
pub const EXIT_FLUSH_LIMIT: Duration = Duration::from_secs(2);
/// A batch buffer grown past this (by a stall) is given back once written.
const KEEP: usize = 1 << 20;

/// The queue in service once [`start`] ran.
static QUEUE: OnceLock<&'static Queue> = OnceLock::new();

/// Writes `line` (one or more whole lines): queued once serving started, at once before.
pub fn write(line: &[u8]) {
    match QUEUE.get() {
        Some(queue) => {
            if queue.push(line) == Pushed::Dropped {
                metrics().log_lines_dropped.inc();
            }
        }
        None => {
            let _ = io::stderr().write_all(line);
        }
    }
}

/// Starts the writer thread; from then on [`write()`] queues. Called once serving begins, so a
/// command that fails before (and prints its error straight to stderr) keeps its lines in
/// order. If the thread cannot be started, lines keep being written directly. (Pingora's
/// daemon mode forks, which would leave the thread behind; credgate never asks for it.)
pub fn start() {
    static START: Once = Once::new();
    START.call_once(|| {
        let queue: &'static Queue = Box::leak(Box::new(Queue::new(CAPACITY)));
        let spawned = std::thread::Builder::new()
            .name("credgate-log".into())
            .spawn(move || queue.run(io::stderr(), report_dropped));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no log writer thread: logging synchronously");
            return;
        }
        let _ = QUEUE.set(queue);
        // SAFETY: registers a function without arguments that only locks, waits and returns.
        unsafe {
            libc::atexit(flush_at_exit);
        }
    });
}

/// Waits until every line queued so far is written, at most `limit`; whether they were.
pub fn flush(limit: Duration) -> bool {
    QUEUE.get().is_none_or(|queue| queue.flush(limit))
}

extern "C" fn flush_at_exit() {
    flush(EXIT_FLUSH_LIMIT);
}

fn report_dropped(lines: u64) {
    tracing::warn!(
        dropped = lines,
        "log lines dropped: stderr's reader did not keep up"
    );
}

/// Stderr through the queue, for tracing's formatter (which writes each event with one
/// `write_all`, so an event is one line in the queue).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

/// What became of a line handed to the queue.
#[derive(Debug, PartialEq, Eq)]
enum Pushed {
    Queued,
    /// The queue was full.
    Dropped,
}

/// Lines waiting for the writer thread.
struct Queue {
    state: Mutex<State>,
    /// Wakes the writer: lines after it parked, a full batch, or a flush.
    lines: Condvar,
    /// Wakes flushers: a batch was written.
    written: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// Lines dropped since the last batch.
    dropped: u64,
    /// The writer sleeps until told there are lines.
    parked: bool,
    /// Someone waits for the queue to be written: no gathering meanwhile.
    flushing: bool,
    /// Bytes ever queued and ever written: a flush waits for the second to reach the first.
    queued: u64,
    done: u64,
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::default(),
            lines: Condvar::new(),
            written: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `line`, or drops it when the queue is full; never waits for the writer.
    fn push(&self, line: &[u8]) -> Pushed {
        let wake = {
            let mut state = self.lock();
            let before = state.pending.len();
            if before + line.len() > self.capacity {
                state.dropped += 1;
                return Pushed::Dropped;
            }
            state.pending.extend_from_slice(line);
            state.queued += line.len() as u64;
            std::mem::take(&mut state.parked) || (before < BATCH && before + line.len() >= BATCH)
        };
        if wake {
            self.lines.notify_one();
        }
        Pushed::Queued
    }

    /// The writer thread: writes each batch to `output`, tells `report` how many lines were
    /// dropped before it (before a flush waiting for the batch returns), and lets the next
    /// batch gather. Never returns.
    fn run(&self, mut output: impl Write, report: impl Fn(u64)) {
        let mut batch = Vec::new();
        loop {
            let dropped = self.next_batch(&mut batch);
            let _ = output.write_all(&batch);
            let _ = output.flush();
            if dropped > 0 {
                report(dropped);
            }
            self.lock().done += batch.len() as u64;
            self.written.notify_all();
            batch.clear();
            if batch.capacity() > KEEP {
                batch = Vec::new();
            }
            self.gather();
        }
    }

    /// Waits for lines and swaps them into `batch`; the lines dropped since the last batch.
    fn next_batch(&self, batch: &mut Vec<u8>) -> u64 {
        let mut state = self.lock();
        while state.pending.is_empty() {
            state.parked = true;
            state = self
                .lines
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.parked = false;
        state.flushing = false;
        std::mem::swap(&mut state.pending, batch);
        std::mem::take(&mut state.dropped)
    }

    /// Lets lines gather for [`GATHER`], unless a batch fills or a flush is asked for first.
    fn gather(&self) {
        let state = self.lock();
        let _ = self
            .lines
            .wait_timeout_while(state, GATHER, |s| s.pending.len() < BATCH && !s.flushing);
    }

    /// Waits until what is queued now is written, at most `limit`; whether it was.
    fn flush(&self, limit: Duration) -> bool {
        let mut state = self.lock();
        let target = state.queued;
        if state.done >= target {
            return true;
        }
        state.flushing = true;
        self.lines.notify_one();
        let (state, _) = self
            .written
            .wait_timeout_while(state, limit, |s| s.done < target)
            .unwrap_or_else(PoisonError::into_inner);
        state.done >= target
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Instant;

    /// What the writer thread wrote, shared with the test; blocks every write while `stuck`.
    #[derive(Clone, Default)]
    struct Output {
        bytes: Arc<Mutex<Vec<u8>>>,
        stuck: Arc<Mutex<()>>,
    }

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _wait = self.stuck.lock().unwrap();
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }
    }

    /// A queue of `capacity` with its writer thread on `output`; and the dropped lines it
    /// reported.
    fn started(capacity: usize, output: &Output) -> (&'static Queue, Arc<AtomicU64>) {
        let queue: &'static Queue = Box::leak(Box::new(Queue::new(capacity)));
        let reported = Arc::new(AtomicU64::new(0));
        let (out, seen) = (output.clone(), reported.clone());
        std::thread::spawn(move || {
            queue.run(out, move |n| {
                seen.fetch_add(n, Ordering::SeqCst);
            })
        });
        (queue, reported)
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_each_threads_order() {
        let output = Output::default();
        let (queue, _) = started(CAPACITY, &output);
        let start = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..5_000 {
                        let line = format!("thread={t} line={i} {}\n", "x".repeat(i % 300));
                        assert_eq!(queue.push(line.as_bytes()), Pushed::Queued);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(queue.flush(Duration::from_secs(10)));
        let text = output.text();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let (t, rest) = line["thread=".len()..].split_once(" line=").unwrap();
            let (i, padding) = rest.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines in order");
            assert_eq!(padding, "x".repeat(i % 300), "a line whole");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4], "every line written");
    }

    #[test]
    fn a_line_after_a_quiet_spell_is_written_without_a_flush() {
        let output = Output::default();
        let (queue, _) = started(CAPACITY, &output);
        for line in ["first\n", "second\n"] {
            // Long enough for the writer to have parked after the line before.
            std::thread::sleep(GATHER * 10);
            queue.push(line.as_bytes());
            let deadline = Instant::now() + Duration::from_secs(5);
            while !output.text().contains(line) {
                assert!(Instant::now() < deadline, "{line:?} not written");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(output.text(), "first\nsecond\n");
    }

    #[test]
    fn a_stuck_output_drops_lines_past_capacity_without_blocking_and_says_so() {
        let output = Output::default();
        let stuck = output.stuck.lock().unwrap();
        let (queue, reported) = started(1_000, &output);
        queue.push(b"taken by the writer, which then blocks\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !queue.lock().pending.is_empty() {
            assert!(Instant::now() < deadline, "the writer takes the first line");
            std::thread::sleep(Duration::from_millis(1));
        }
        let began = Instant::now();
        let line = [&[b'.'; 99][..], b"\n"].concat();
        let pushed: Vec<Pushed> = (0..100).map(|_| queue.push(&line)).collect();
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "pushing never waits"
        );
        let queued = pushed.iter().filter(|p| **p == Pushed::Queued).count();
        assert_eq!(
            queued, 10,
            "1 000 bytes hold ten lines of 100 (the first is out)"
        );
        assert!(
            !queue.flush(Duration::from_millis(50)),
            "a flush gives up on a stuck output"
        );
        drop(stuck);
        assert!(queue.flush(Duration::from_secs(5)));
        assert_eq!(reported.load(Ordering::SeqCst), 90);
        assert_eq!(queue.push(b"after\n"), Pushed::Queued, "room again");
        assert!(queue.flush(Duration::from_secs(5)));
        let text = output.text();
        assert_eq!(text.lines().filter(|l| *l == ".".repeat(99)).count(), 10);
        assert!(text.ends_with("after\n"));
    }
}
