//! The main listener's TLS certificate: loaded from PEM files, served through a resolver that
//! always hands out the current one, so a renewed certificate is picked up without a restart
//! (see [`crate::serve::reload`], which watches the files).

use std::path::Path;
use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

use crate::live::Live;

/// The certificate in service.
pub type CertStore = Live<CertifiedKey>;

/// Loads a certificate chain and its private key (PEM).
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    pingora::tls::install_default_crypto_provider();
    let (certs, key) =
        pingora::tls::load_certs_and_key_files(&cert.to_string_lossy(), &key.to_string_lossy())
            .map_err(|e| format!("cannot load the certificate: {e}"))?
            .ok_or("the certificate or key file holds no PEM item")?;
    let provider = CryptoProvider::get_default().ok_or("no TLS crypto provider")?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unusable private key: {e}"))?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified
        .keys_match()
        .map_err(|e| format!("the key does not belong to the certificate: {e}"))?;
    Ok(certified)
}

/// TLS settings that serve whatever certificate `store` holds at handshake time.
pub fn settings(store: Arc<CertStore>) -> pingora::Result<TlsSettings> {
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(Arc::new(Resolver(store)));
    Ok(settings)
}

struct Resolver(Arc<CertStore>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("credgate certificate resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.snapshot())
    }
}
