//! The process: assembles and runs the Pingora server — the main listener, the admin listener
//! and, when configured, the demo echo upstream, all in one process — and reloads what it
//! serves from the files while it runs. Only this module and `cli/` build stores and services.

pub mod admin;
pub mod demo;
pub mod logging;
pub mod reload;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::config::Config;
use crate::guard::verify::TokenVerifier;
use crate::guard::Guard;
use crate::issuer::Issuer;
use crate::live::Live;
use crate::manage::console::{Console, Settings};
use crate::manage::Manage;
use crate::oauth::issuer_url::Issuers;
use crate::oauth::{KeySet, KeyStore};
use crate::problems::Problems;
use crate::proxy::{in_flight, Edge, Gateway};
use crate::registry::{self, Store};
use crate::serve::admin::{AdminApp, Readiness};
use crate::serve::demo::EchoApp;
use crate::serve::reload::Reloader;
use crate::serve::tls::CertStore;

/// Loads the registry and keys (generating a first key if there is none), checks that every
/// listener's address can be bound, then serves until SIGTERM (graceful: stop accepting, let
/// in-flight requests finish, at most `grace_period`) or SIGINT (immediate). Returns only if
/// loading or binding fails.
pub fn serve(config: Config, config_path: &Path) -> Result<(), Problems> {
    // SIGHUP means "reload" here; until the reloader listens for it, ignore it rather than let
    // its default action end the process.
    // SAFETY: setting a signal's disposition to SIG_IGN runs no code in the handler context.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let orgs = registry::load(
        &config.issuer.issuers,
        &config.registry.path,
        &config.issuer.lifetimes,
    )?;
    let keys = KeySet::load_or_generate(
        &config.issuer.keys_dir,
        config.issuer.algorithm,
        config.issuer.key_activation_delay,
    )?;
    tracing::info!(
        organizations = orgs.len(),
        clients = orgs.client_count(),
        kid = %keys.signing_key().kid,
        algorithm = keys.signing_key().algorithm.name(),
        "registry and keys loaded"
    );
    orgs.count(true);
    crate::metrics::metrics().config_valid.set(1);
    let listeners = listeners(&config);
    check_bindable(config_path, &listeners)?;
    exit_if_pingora_cannot_bind();

    let registry = Arc::new(Store::new(orgs));
    let keys = Arc::new(KeyStore::new(keys));
    let issuer = Arc::new(Issuer::new(config.issuer.clone(), keys.clone()));
    let verifier = TokenVerifier::new(keys.clone(), &config.issuer, &config.guard);
    let guard = Arc::new(Guard::new(verifier, registry.clone()));
    let edge = Arc::new(Live::new(Edge::new(&config, &config)));
    let certificate = match &config.server.tls {
        Some(files) => Some(Arc::new(CertStore::new(
            crate::serve::tls::load(&files.cert, &files.key)
                .map_err(|e| Problems::one(&files.cert, e))?,
        ))),
        None => None,
    };
    let reloader = Reloader::new(&config, registry.clone(), keys)
        .with_certificate(config.server.tls.clone().zip(certificate.clone()))
        .with_config(config_path.to_path_buf(), config.clone(), edge.clone());
    let reloader = background_service("registry reload", reloader);
    let manage = match &config.manage {
        Some(manage) => Some(Arc::new(
            manage_api(&config, manage, guard.clone())?.with_applier(reloader.task()),
        )),
        None => None,
    };
    let serving: Vec<_> = listeners
        .iter()
        .filter(|(field, _)| *field != "admin.listen")
        .copied()
        .collect();
    let readiness = Arc::new(Readiness::new(serving, edge.clone()));

    let grace = config.server.grace_period.as_secs();
    let server_conf = ServerConf {
        threads: config.server.threads,
        work_stealing: config.server.work_stealing,
        upstream_keepalive_pool_size: config.server.upstream_keepalive_pool,
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(grace.min(5)),
        ca_file: config
            .server
            .upstream_ca_file
            .as_ref()
            .map(|f| f.display().to_string()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();

    let mut main = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(edge, registry, issuer, guard, manage),
        "credgate",
    );
    let listen = config.server.listen.to_string();
    match &config.server.tls {
        Some(files) => {
            let settings =
                crate::serve::tls::settings(certificate.clone().expect("loaded with the files"))
                    .map_err(|e| Problems::one(&files.cert, e.to_string()))?;
            main.add_tls_with_settings(&listen, None, settings);
        }
        None => main.add_tcp(&listen),
    }
    server.add_service(main);
    server.add_service(reloader);
    server.add_service(background_service(
        "drain",
        Drain {
            readiness: readiness.clone(),
        },
    ));
    tracing::info!(listen = %config.server.listen, routes = config.routes.len(), "gateway listening");

    if let Some(admin) = &config.admin {
        let mut service = Service::new("credgate admin".into(), AdminApp::new(readiness));
        service.add_tcp(&admin.listen.to_string());
        server.add_service(service);
        tracing::info!(listen = %admin.listen, "admin listening");
    }
    if let Some(demo) = &config.demo {
        let mut service = Service::new("credgate demo echo".into(), EchoApp);
        service.add_tcp(&demo.echo_upstream.to_string());
        server.add_service(service);
        tracing::info!(listen = %demo.echo_upstream, "demo echo upstream listening");
    }
    // From here on nothing fails with an error of its own: log lines leave the event loop.
    crate::log_writer::start();
    server.run_forever()
}

/// Every listener of `config`, by its config field.
fn listeners(config: &Config) -> Vec<(&'static str, SocketAddr)> {
    let mut listeners = vec![("server.listen", config.server.listen)];
    listeners.extend(config.admin.as_ref().map(|a| ("admin.listen", a.listen)));
    listeners.extend(
        config
            .demo
            .as_ref()
            .map(|d| ("demo.echo_upstream", d.echo_upstream)),
    );
    listeners
}

/// Binds and releases every listener's address, as Pingora will (`SO_REUSEADDR`), so that an
/// address in use or not assignable is one clear error before anything starts. Pingora itself
/// would retry an address in use for half a minute, then panic in the listener's thread and
/// leave the process running without that listener.
fn check_bindable(config_path: &Path, listeners: &[(&str, SocketAddr)]) -> Result<(), Problems> {
    let mut problems = Problems::default();
    for (field, addr) in listeners {
        let bound = socket2::Socket::new(
            socket2::Domain::for_address(*addr),
            socket2::Type::STREAM,
            None,
        )
        .and_then(|socket| {
            socket.set_reuse_address(true)?;
            socket.bind(&(*addr).into())?;
            socket.listen(1)
        });
        if let Err(e) = bound {
            problems.push(config_path, *field, format!("cannot listen on {addr}: {e}"));
        }
    }
    problems.into_result(())
}

/// Should Pingora still fail to bind (another program took the address after the check), it
/// panics in that listener's thread with the process left running: exit instead, with one line.
fn exit_if_pingora_cannot_bind() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Failed to build listeners") {
            crate::log_writer::flush(crate::log_writer::EXIT_FLUSH_LIMIT);
            eprintln!("error: cannot listen: {message}");
            std::process::exit(1);
        }
        default(info);
    }));
}

/// On SIGTERM: marks the gateway unready, waits until no request is in flight, and exits.
/// Pingora would otherwise sleep the whole grace period whatever is in flight; the grace
/// period remains the upper bound (Pingora ends the process when it is over).
struct Drain {
    readiness: Arc<Readiness>,
}

/// How often the drain looks at the requests in flight.
const DRAIN_POLL: Duration = Duration::from_millis(20);

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        self.readiness.drain();
        tracing::info!(
            in_flight = in_flight(),
            "shutting down: waiting for requests in flight"
        );
        // Two empty looks in a row: a request whose head was just read is counted by then.
        let mut empty = 0;
        while empty < 2 {
            tokio::time::sleep(DRAIN_POLL).await;
            empty = if in_flight() == 0 { empty + 1 } else { 0 };
        }
        tracing::info!("no request in flight; exiting");
        std::process::exit(0);
    }
}

/// The management API of `[manage]`, serving the web console when it asks for it.
fn manage_api(
    config: &Config,
    manage: &crate::config::ManageConfig,
    tokens: Arc<Guard>,
) -> Result<Manage, Problems> {
    let api = Manage::new(
        manage.clone(),
        config.registry.path.clone(),
        config.issuer.lifetimes,
        tokens,
    )
    .map_err(|e| {
        Problems::one(
            &manage.audit_log,
            format!("manage.audit_log cannot be opened for appending: {e}"),
        )
    })?;
    let template = match &config.issuer.issuers {
        Issuers::PerOrg(template) if manage.console => template,
        _ => return Ok(api),
    };
    let settings = Settings::new(
        &manage.prefix,
        &manage.scope,
        template,
        &config.issuer.token_paths[0],
        config.issuer.lifetimes,
        config.issuer.default_token_lifetime,
    );
    Ok(api.with_console(Console::new(&settings)))
}
