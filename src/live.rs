//! A value that is read on every request and replaced whole from time to time: the registry
//! and the signing keys. Readers never lock; a replacement is atomic, and a request that took a
//! snapshot keeps using it to the end.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

pub struct Live<T>(ArcSwap<T>);

impl<T> Live<T> {
    pub fn new(value: T) -> Self {
        Live(ArcSwap::from_pointee(value))
    }

    /// The current value; cheap, lock-free, and stable for as long as it is held.
    pub fn snapshot(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// The current value, for a look that ends before the next `.await`: unlike
    /// [`Live::snapshot`] it touches no reference count, which every core would share and
    /// take turns owning when each looks on every request (`cargo bench --bench contention`).
    pub fn read(&self) -> Guard<Arc<T>> {
        self.0.load()
    }

    /// Replaces the value whole.
    pub fn replace(&self, value: T) {
        self.0.store(Arc::new(value));
    }
}
