//! Reloading the registry while serving: parse and validate everything first, then swap the
//! snapshot whole. A registry that fails validation is not applied: the previous snapshot keeps
//! serving and the problems are logged with their file and field.
//!
//! A reload is triggered by SIGHUP (`kill -HUP <pid>`).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use super::{file, Limits, Store};
use crate::problems::Problems;

/// Reloads one registry path into one store.
pub struct Reloader {
    path: PathBuf,
    limits: Limits,
    store: Arc<Store>,
}

impl Reloader {
    pub fn new(path: PathBuf, limits: Limits, store: Arc<Store>) -> Self {
        Reloader {
            path,
            limits,
            store,
        }
    }

    /// Loads and validates the registry, and swaps it in only if it is valid.
    /// Returns the number of clients now served.
    pub fn reload(&self) -> Result<usize, Problems> {
        let registry = file::load(&self.path, &self.limits)?;
        let clients = registry.len();
        self.store.replace(registry);
        Ok(clients)
    }

    fn reload_and_log(&self) {
        match self.reload() {
            Ok(clients) => tracing::info!(clients, "registry reloaded"),
            Err(problems) => tracing::error!(
                problems = %problems.to_string().replace('\n', "; "),
                "registry reload rejected; the previous registry stays in service"
            ),
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload by restart only");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hangups.recv() => self.reload_and_log(),
                _ = shutdown.changed() => return,
            }
        }
    }
}
