//! Prometheus metrics, served as text on the admin listener's `/metrics`.
//!
//! Label values come only from the configuration (route prefixes) and from fixed sets
//! (outcomes, status classes), never from requests, so every label set stays bounded; no
//! secret, token or client-supplied string ever becomes a label.
//!
//! Counters and histograms are counted per thread and added up when scraped (`metrics/shards.rs`): the
//! request path updates several on every request, on every core at once.

mod shards;

use std::sync::{Arc, OnceLock};

use prometheus::{Encoder, Gauge, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub use shards::{Tally, TallyVec, Timings, TimingsVec};

pub struct Metrics {
    registry: Registry,
    /// `outcome`: `issued` or the OAuth error code.
    pub token_requests: TallyVec,
    pub token_issue_seconds: Arc<Timings>,
    /// `route`: the route prefix; `outcome`: `allowed`, `public` or the refusal.
    pub auth_requests: TallyVec,
    pub auth_cache_hits: Tally,
    pub auth_cache_misses: Tally,
    /// `status_class`: `2xx` … `5xx`, or `error` when no response came.
    pub upstream_responses: TallyVec,
    /// `route`: the route prefix or the endpoint (`token`, `jwks`, `not_found`, …).
    pub request_duration: TimingsVec,
    /// `result`: `applied` or `rejected`.
    pub registry_reloads: TallyVec,
    pub registry_clients: IntGauge,
    /// Organisations by state (`enabled`, `disabled`); the single issuer counts as one.
    pub organizations: IntGaugeVec,
    /// Clients by state (`enabled`, `disabled`, `expired`) as of the last reload.
    pub clients: IntGaugeVec,
    /// 1 while the registry files in service are valid; 0 after a refused reload, while only
    /// what both the previous registry and the refused files grant is in service.
    pub registry_valid: IntGauge,
    pub registry_last_reload: Gauge,
    pub secret_verify_queue_depth: IntGauge,
    pub secret_cache_hits: Tally,
    pub secret_verifications: Tally,
    pub upstream_lookups: Tally,
    pub upstream_resolve_failures: Tally,
    pub tls_handshake_failures: Tally,
    /// Log lines dropped because stderr did not keep up ([`crate::log_writer`]).
    pub log_lines_dropped: Tally,
    /// `result`: `applied` or `rejected`.
    pub config_reloads: TallyVec,
    /// 1 while the config file's last version was applied, 0 after a refused reload.
    pub config_valid: IntGauge,
    /// `result`: `applied` or `rejected`.
    pub certificate_reloads: TallyVec,
    /// `by`: `client` or `ip`, the limit that refused the attempt.
    pub auth_throttled: TallyVec,
}

/// Registers `metric` (which must build) and returns it.
fn register<M>(registry: &Registry, metric: prometheus::Result<M>) -> M
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let metric = metric.expect("a valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("a unique metric");
    metric
}

/// The process's metrics (one gateway per process).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let build_info: IntGaugeVec = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "credgate_build_info",
                    "Always 1; the version is in the label",
                ),
                &["version"],
            ),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("unique metric");
        let counter = |name: &str, help: &str| register(&r, Tally::new(name, help));
        let gauge = |name: &str, help: &str| register(&r, IntGauge::new(name, help));
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(&r, TallyVec::new(Opts::new(name, help), labels))
        };
        let metrics = Metrics {
            token_requests: counter_vec(
                "credgate_token_requests_total",
                "Token requests by outcome",
                &["outcome"],
            ),
            token_issue_seconds: register(
                &r,
                TimingsVec::new(
                    "credgate_token_issue_seconds",
                    "Time to answer a token request, argon2 included",
                    None,
                ),
            )
            .series(""),
            auth_requests: counter_vec(
                "credgate_auth_requests_total",
                "Requests to routes by route and outcome",
                &["route", "outcome"],
            ),
            auth_cache_hits: counter(
                "credgate_auth_cache_hits_total",
                "Token checks answered by the cache",
            ),
            auth_cache_misses: counter(
                "credgate_auth_cache_misses_total",
                "Token checks that verified a signature",
            ),
            upstream_responses: counter_vec(
                "credgate_upstream_responses_total",
                "Upstream responses by route and status class",
                &["route", "status_class"],
            ),
            request_duration: register(
                &r,
                TimingsVec::new(
                    "credgate_request_duration_seconds",
                    "Time from request to response",
                    Some("route"),
                ),
            ),
            registry_reloads: counter_vec(
                "credgate_registry_reloads_total",
                "Registry reloads by result",
                &["result"],
            ),
            registry_clients: gauge(
                "credgate_registry_clients",
                "Clients in the registry in service",
            ),
            organizations: register(
                &r,
                IntGaugeVec::new(
                    Opts::new("credgate_organizations", "Organisations in service, by state"),
                    &["state"],
                ),
            ),
            clients: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "credgate_clients",
                        "Clients in service by state (a client of a disabled organisation counts as disabled), as of the last reload",
                    ),
                    &["state"],
                ),
            ),
            registry_valid: gauge(
                "credgate_registry_valid",
                "1 while the registry files in service are valid, 0 after a refused reload (alert on 0)",
            ),
            registry_last_reload: register(
                &r,
                Gauge::new(
                    "credgate_registry_last_reload_timestamp_seconds",
                    "When the registry in service was loaded (unix time)",
                ),
            ),
            secret_verify_queue_depth: gauge(
                "credgate_secret_verify_queue_depth",
                "Token requests waiting for an argon2 verification slot",
            ),
            secret_cache_hits: counter(
                "credgate_secret_cache_hits_total",
                "Client secrets recognised without argon2 (verified-secret cache)",
            ),
            secret_verifications: counter(
                "credgate_secret_verifications_total",
                "Token or introspection requests that ran argon2id",
            ),
            upstream_lookups: counter(
                "credgate_upstream_lookups_total",
                "DNS lookups of upstream names (one at a time per name)",
            ),
            upstream_resolve_failures: counter(
                "credgate_upstream_resolve_failures_total",
                "Lookups of an upstream's DNS name that failed",
            ),
            tls_handshake_failures: counter(
                "credgate_tls_handshake_failures_total",
                "Failed TLS handshakes on the main listener (plain HTTP, scanners, clients giving up)",
            ),
            log_lines_dropped: counter(
                "credgate_log_lines_dropped_total",
                "Log lines dropped because stderr did not keep up (its reader stalled)",
            ),
            config_reloads: counter_vec(
                "credgate_config_reloads_total",
                "Reloads of the gateway config file by result",
                &["result"],
            ),
            config_valid: gauge(
                "credgate_config_valid",
                "1 while the config file's last version is in service, 0 after a refused reload",
            ),
            certificate_reloads: counter_vec(
                "credgate_certificate_reloads_total",
                "Reloads of the TLS certificate by result",
                &["result"],
            ),
            auth_throttled: counter_vec(
                "credgate_auth_throttled_total",
                "Client authentications refused with slow_down by the failure limits",
                &["by"],
            ),
            registry: r,
        };
        metrics.touch_fixed_series();
        metrics
    }

    /// Creates every series whose labels come from a fixed set, so each is exported at zero
    /// from the start: a rate or an alert on a series that does not exist yet sees nothing.
    fn touch_fixed_series(&self) {
        for outcome in TOKEN_OUTCOMES {
            self.token_requests.with_label_values(&[outcome]);
        }
        for result in ["applied", "rejected"] {
            self.registry_reloads.with_label_values(&[result]);
            self.config_reloads.with_label_values(&[result]);
            self.certificate_reloads.with_label_values(&[result]);
        }
        for by in ["client", "ip"] {
            self.auth_throttled.with_label_values(&[by]);
        }
    }

    /// Records that a registry with `clients` clients went into service now: all the files
    /// say (`valid`), or the restriction a refused reload left in service.
    pub fn registry_applied(&self, clients: usize, valid: bool) {
        self.registry_valid.set(i64::from(valid));
        self.registry_clients.set(clients as i64);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.registry_last_reload.set(now);
    }

    /// Records how many organisations (`[enabled, disabled]`) and clients (`[enabled,
    /// disabled, expired]`) are in service.
    pub fn population(&self, orgs: [usize; 2], clients: [usize; 3]) {
        for (state, n) in ["enabled", "disabled"].into_iter().zip(orgs) {
            self.organizations.with_label_values(&[state]).set(n as i64);
        }
        for (state, n) in ["enabled", "disabled", "expired"].into_iter().zip(clients) {
            self.clients.with_label_values(&[state]).set(n as i64);
        }
    }

    /// Counts a reload: applied, or refused with a restriction left in service. (What is in
    /// service then is recorded with [`Metrics::registry_applied`]: with organisations, an
    /// applied file does not make the registry valid while another file is refused.)
    pub fn registry_reloaded(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.registry_reloads.with_label_values(&[result]).inc();
    }

    /// Records a reload of the gateway config file.
    pub fn config_reloaded(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.config_reloads.with_label_values(&[result]).inc();
        self.config_valid.set(i64::from(applied));
    }

    /// Records a reload of the TLS certificate.
    pub fn certificate_reloaded(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.certificate_reloads.with_label_values(&[result]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        out
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Every outcome of a token request: `issued` or an RFC 6749 §5.2 error code credgate answers.
const TOKEN_OUTCOMES: [&str; 8] = [
    "issued",
    "invalid_request",
    "invalid_client",
    "invalid_scope",
    "unsupported_grant_type",
    "slow_down",
    "temporarily_unavailable",
    "server_error",
];

/// The refusals of a protected route (see `guard::bearer::Denial`).
const ROUTE_REFUSALS: [&str; 4] = [
    "missing_token",
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
];

/// The metric series of one route, resolved once when the route table is built: a proxied
/// request then updates them without hashing labels or taking the vector's lock.
#[derive(Debug)]
pub struct RouteMetrics {
    prefix: String,
    /// `auth_requests{outcome}` for the outcome this route admits with (`allowed`/`public`).
    admitted: Tally,
    admitted_outcome: &'static str,
    duration: Arc<Timings>,
    /// `upstream_responses{status_class}`, indexed by the status's first digit - 1.
    upstream: [Tally; 5],
}

impl Metrics {
    pub fn route(&self, prefix: &str, public: bool) -> RouteMetrics {
        let admitted_outcome = if public { "public" } else { "allowed" };
        if !public {
            for refusal in ROUTE_REFUSALS {
                self.auth_requests.with_label_values(&[prefix, refusal]);
            }
        }
        RouteMetrics {
            prefix: prefix.to_owned(),
            admitted: self
                .auth_requests
                .with_label_values(&[prefix, admitted_outcome]),
            admitted_outcome,
            duration: self.request_duration.series(prefix),
            upstream: STATUS_CLASSES
                .map(|class| self.upstream_responses.with_label_values(&[prefix, class])),
        }
    }
}

impl RouteMetrics {
    /// Counts a request to this route by its guard outcome; refusals are rarer and looked up.
    pub fn auth(&self, outcome: &'static str) {
        if outcome == self.admitted_outcome {
            self.admitted.inc();
        } else {
            metrics()
                .auth_requests
                .with_label_values(&[&self.prefix, outcome])
                .inc();
        }
    }

    /// Counts an upstream response by its status class.
    pub fn upstream(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.upstream[class].inc();
    }

    /// Counts a request that got no upstream response at all.
    pub fn upstream_failed(&self) {
        metrics()
            .upstream_responses
            .with_label_values(&[&self.prefix, "error"])
            .inc();
    }

    pub fn duration(&self) -> &Timings {
        &self.duration
    }
}
