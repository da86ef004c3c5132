//! What the integration tests, benchmarks and fuzz targets use beyond the library's own
//! interface: a minimal valid config, the secret hashing the CLI does, the clock the guard
//! reads, and minting a token directly. Stable for them; not part of the product's contract.

pub use crate::issuer::mint::{mint, Grant, Minted};
pub use crate::registry::new_secret::hash_secret;

/// The smallest valid gateway config: a listener, an issuer, a keys directory and a registry
/// path. Append tables (`[[route]]`, `[guard]`) and lines after the sections as needed.
pub const MINIMAL_CONFIG: &str = "[server]\nlisten = \"127.0.0.1:1\"\n\
[issuer]\nissuer = \"http://127.0.0.1:1\"\nkeys_dir = \"keys\"\naudience = \"api\"\n\
[registry]\npath = \"clients.toml\"\n";

/// Now, in unix seconds, as the guard compares `exp` and `nbf` with it.
pub fn unix_now() -> i64 {
    crate::guard::verify::unix_now()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_minimal_config_is_valid_and_appendable() {
        let path = std::path::Path::new("minimal.toml");
        let config = crate::config::Config::parse(path, super::MINIMAL_CONFIG).unwrap();
        assert_eq!(config.registry.path, std::path::Path::new("clients.toml"));
        let more = format!("{}[guard]\nleeway = \"1s\"\n", super::MINIMAL_CONFIG);
        assert!(crate::config::Config::parse(path, &more).is_ok());
    }
}
