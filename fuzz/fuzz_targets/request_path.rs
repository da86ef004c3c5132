//! Path canonicalisation and routing.
//!
//! Beyond not panicking: a canonical path is its own canonical form, and a path routed to a
//! route lies under that route's prefix.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use credgate::config::Config;
use credgate::path::{canonicalize, under};
use credgate::routes::{Endpoint, RouteTable};
use credgate::registry::Organizations;
use libfuzzer_sys::fuzz_target;

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let text = "[server]\nlisten = \"127.0.0.1:1\"\n\
            [issuer]\nissuer = \"http://127.0.0.1:1\"\nkeys_dir = \"k\"\naudience = \"api\"\n\
            [registry]\npath = \"r\"\n\
            [[route]]\nprefix = \"/api/\"\nupstream = \"127.0.0.1:2\"\n\
            [[route]]\nprefix = \"/api/public/\"\nupstream = \"127.0.0.1:2\"\npublic = true\n\
            [[route]]\nprefix = \"/files\"\nupstream = \"127.0.0.1:2\"\n";
        let config = Config::parse(Path::new("fuzz.toml"), text).expect("valid config");
        RouteTable::new(&config.issuer, &config.routes, None)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(canonical) = canonicalize(raw) {
        let again = canonicalize(&canonical).expect("a canonical path stays valid");
        assert_eq!(again, canonical);
    }
    if let Ok(Endpoint::Route { route, .. }) = table().resolve("h", raw, &Organizations::default()) {
        let canonical = canonicalize(raw).expect("a routed path is canonical");
        assert!(under(&canonical, &route.prefix));
    }
});
