//! Logs: one line per event on stderr (through [`crate::log_writer`], off the event loop while
//! serving), as text or one JSON object per line; `RUST_LOG` overrides the configured level.
//!
//! Two things never reach the log at ERROR. Pingora's own debug output dumps whole request
//! heads (query strings, `Authorization`), so its crates are capped at `info` whatever the
//! level: no setting may put a token in the logs. And Pingora reports every failed TLS
//! handshake at ERROR — plain HTTP sent to the TLS port, a scanner, a client that gives up —
//! which is ordinary client behaviour: those are counted in
//! `credgate_tls_handshake_failures_total` instead (Pingora cannot be told to log them lower).

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata};
use tracing_subscriber::filter::{FilterExt, LevelFilter};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat};
use crate::metrics::metrics;

/// Installs the process's logger.
pub fn init(config: &LogConfig) {
    let level = level_filter(
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&config.level))
            .unwrap_or_else(|_| EnvFilter::new("info")),
    );
    let lines = tracing_subscriber::fmt::layer().with_writer(crate::log_writer::Stderr);
    let lines = match config.format {
        LogFormat::Json => lines.json().boxed(),
        LogFormat::Text => lines
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
    };
    crate::access_log::use_json(config.format == LogFormat::Json);
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(level.and(HandshakeNoise)))
        .try_init();
}

/// `filter`, with Pingora's crates capped at `info`.
fn level_filter(filter: EnvFilter) -> EnvFilter {
    filter.add_directive("pingora=info".parse().expect("a valid directive"))
}

/// Where Pingora reports a failed downstream handshake, and how its message starts.
const HANDSHAKE_TARGET: &str = "pingora_core::services::listening";
const HANDSHAKE_MESSAGE: &str = "Downstream handshake";

/// Counts Pingora's failed-handshake errors instead of logging them.
struct HandshakeNoise;

impl<S> Filter<S> for HandshakeNoise {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    /// Widens nothing: the level filter alone decides how verbose the process is, so `log`
    /// records below it (Pingora's per-request `trace!`) are never even built.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        // Pingora logs through the `log` crate: the bridge puts the real target in a field.
        // Only its ERROR events are looked at, so no other message is ever formatted here.
        let metadata = event.metadata();
        if metadata.target() != "log" || *metadata.level() != Level::ERROR {
            return true;
        }
        let mut seen = Handshake::default();
        event.record(&mut seen);
        let noise = seen.target && seen.message;
        if noise {
            metrics().tls_handshake_failures.inc();
        }
        !noise
    }
}

/// Whether a bridged `log` record is Pingora's failed-handshake report.
#[derive(Default)]
struct Handshake {
    target: bool,
    message: bool,
}

impl Visit for Handshake {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "log.target" {
            self.target = value == HANDSHAKE_TARGET;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}").starts_with(HANDSHAKE_MESSAGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::Registry;

    /// The handshake filter must not widen the process's verbosity: with a `None` hint the
    /// `log` bridge would build every one of Pingora's per-request `trace!` records (measured:
    /// 100 000 more instructions per request).
    #[test]
    fn the_noise_filter_keeps_the_configured_verbosity() {
        let combined = level_filter(EnvFilter::new("info")).and(HandshakeNoise);
        let hint = <_ as Filter<Registry>>::max_level_hint(&combined);
        assert_eq!(hint, Some(LevelFilter::INFO));
    }
}
