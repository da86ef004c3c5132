//! Assembles and runs the Pingora server: the main listener, the admin listener and, when
//! configured, the demo echo upstream, all in one process.

use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::config::Config;
use crate::guard::verify::TokenVerifier;
use crate::guard::Guard;
use crate::issuer::keys::{KeySet, KeyStore};
use crate::issuer::Issuer;
use crate::ops::admin::AdminApp;
use crate::ops::demo::EchoApp;
use crate::problems::Problems;
use crate::proxy::Gateway;
use crate::registry::reload::Reloader;
use crate::registry::{self, Store};
use crate::routes::RouteTable;
use crate::tls::CertStore;

/// Loads the registry and keys (generating a first key if there is none), then serves until
/// SIGTERM (graceful: stop accepting, let in-flight requests finish within `grace_period`) or
/// SIGINT (immediate). Returns only if loading fails.
pub fn serve(config: Config) -> Result<(), Problems> {
    // SIGHUP means "reload" here; until the reloader listens for it, ignore it rather than let
    // its default action end the process.
    // SAFETY: setting a signal's disposition to SIG_IGN runs no code in the handler context.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let registry = registry::file::load(&config.registry.path, &config.issuer.lifetimes)?;
    let keys = KeySet::load_or_generate(&config.issuer.keys_dir, config.issuer.algorithm)?;
    tracing::info!(
        clients = registry.len(),
        kid = %keys.signing_key().kid,
        algorithm = keys.signing_key().algorithm.name(),
        "registry and keys loaded"
    );
    crate::ops::metrics::metrics().registry_applied(registry.len());
    let registry = Arc::new(Store::new(registry));
    let keys = Arc::new(KeyStore::new(keys));
    let issuer = Arc::new(Issuer::new(
        config.issuer.clone(),
        registry.clone(),
        keys.clone(),
    ));
    let keys_for_reload = keys.clone();
    let verifier = TokenVerifier::new(keys, &config.issuer, &config.guard);
    let guard = Arc::new(Guard::new(verifier, registry.clone()));
    let routes = RouteTable::new(&config.issuer, &config.routes);
    let certificate = match &config.server.tls {
        Some(files) => Some(Arc::new(CertStore::new(
            crate::tls::load(&files.cert, &files.key).map_err(|e| Problems::one(&files.cert, e))?,
        ))),
        None => None,
    };
    let reloader = Reloader::new(
        config.registry.path.clone(),
        config.issuer.lifetimes,
        registry,
        config.issuer.keys_dir.clone(),
        config.issuer.algorithm,
        keys_for_reload,
    )
    .with_certificate(config.server.tls.clone().zip(certificate.clone()));
    let reloader = if config.registry.watch {
        reloader
    } else {
        reloader.without_watching()
    };

    let grace = config.server.grace_period.as_secs();
    let server_conf = ServerConf {
        threads: config.server.threads,
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
        Gateway::new(routes, issuer, guard, &config.server),
        "credgate",
    );
    let listen = config.server.listen.to_string();
    match &config.server.tls {
        Some(files) => {
            let settings =
                crate::tls::settings(certificate.clone().expect("loaded with the files"))
                    .map_err(|e| Problems::one(&files.cert, e.to_string()))?;
            main.add_tls_with_settings(&listen, None, settings);
        }
        None => main.add_tcp(&listen),
    }
    server.add_service(main);
    server.add_service(background_service("registry reload", reloader));
    tracing::info!(listen = %config.server.listen, routes = config.routes.len(), "gateway listening");

    if let Some(admin) = &config.admin {
        let mut service = Service::new("credgate admin".into(), AdminApp);
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
    server.run_forever()
}
