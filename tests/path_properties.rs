//! Properties of path canonicalisation and routing, over paths assembled from the pieces
//! path-confusion attacks are made of (dot segments raw and encoded, encoded slashes and
//! backslashes, `;` parameters, doubled slashes, overlong UTF-8, NUL).

use std::borrow::Cow;
use std::path::Path;

use credgate::config::Config;
use credgate::path::canonicalize;
use credgate::registry::Organizations;
use credgate::routes::{Endpoint, RouteTable};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const PIECES: &[&str] = &[
    "/",
    "//",
    "api",
    "admin",
    "public",
    "x",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2e%2e",
    ".%2e",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "\\",
    "%25",
    "%252e",
    ";",
    ";x",
    "%3b",
    "%00",
    "%c0%af",
    "%e2%80%ae",
    "é",
    "%C3%A9",
    "%",
    "%g1",
    "?",
    "#",
    " ",
    "%20",
];

/// Where generated paths start: the routes' prefixes (so that routing is reached often),
/// near misses of them, and nothing at all.
const STARTS: &[&str] = &[
    "",
    "/",
    "/api/",
    "/api/public/",
    "/admin/",
    "/api",
    "api/",
    "/API/",
];

/// Raw request paths: a start and up to 10 pieces.
fn raw_path() -> impl Strategy<Value = String> {
    let start = proptest::sample::select(STARTS);
    let piece = proptest::sample::select(PIECES);
    (start, proptest::collection::vec(piece, 0..10))
        .prop_map(|(start, pieces)| format!("{start}{}", pieces.concat()))
}

fn table() -> RouteTable {
    let routes =
        "[[route]]\nprefix = \"/api/\"\nupstream = \"127.0.0.1:2\"\nscopes = [\"api.read\"]\n\
        [[route]]\nprefix = \"/api/public/\"\nupstream = \"127.0.0.1:2\"\npublic = true\n\
        [[route]]\nprefix = \"/admin/\"\nupstream = \"127.0.0.1:2\"\nroles = [\"admin\"]\n";
    let text = format!("{}{routes}", credgate::testing::MINIMAL_CONFIG);
    let config = Config::parse(Path::new("props.toml"), &text).expect("valid config");
    RouteTable::new(&config.issuer, &config.routes, None)
}

/// How a lenient upstream could read `raw`: percent-decoded repeatedly, `\` taken for `/`,
/// empty and `.` segments dropped, `..` applied (RFC 3986 §5.2.4), `;` parameters stripped.
fn lenient_reading(raw: &str) -> String {
    let mut text = raw.to_owned();
    for _ in 0..3 {
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == text {
            break;
        }
        text = decoded;
    }
    let mut out: Vec<&str> = Vec::new();
    for segment in text.split(['/', '\\']) {
        match segment.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            name => out.push(name),
        }
    }
    format!("/{}", out.join("/"))
}

/// Whether `path` is `prefix` (without its trailing `/`) or lies under it.
fn lies_under(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix) || path == prefix.trim_end_matches('/')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn canonicalisation_is_idempotent(raw in raw_path()) {
        if let Ok(canonical) = canonicalize(&raw) {
            let again = canonicalize(&canonical).expect("a canonical path stays valid");
            prop_assert_eq!(&again, &canonical);
            prop_assert!(matches!(
                canonicalize(&again),
                Ok(Cow::Borrowed(_))
            ), "nothing left to decode in {:?}", again);
        }
    }

    /// A path the router sends to a route lies under that route's prefix however leniently the
    /// upstream decodes and normalises it, and a path the stricter `/api/` gets does not read
    /// as one under the public `/api/public/`.
    #[test]
    fn a_routed_path_never_resolves_outside_its_route(raw in raw_path()) {
        let table = table();
        if let Ok(Endpoint::Route { route, .. }) = table.resolve("h", &raw, &Organizations::default()) {
            let upstream_view = lenient_reading(&raw);
            prop_assert!(
                lies_under(&upstream_view, &route.prefix),
                "{:?} routed to {} but reads as {:?}", raw, route.prefix, upstream_view
            );
            if route.prefix == "/api/" {
                // `/api/public` itself stays with the stricter `/api/`, which is safe.
                prop_assert!(
                    !upstream_view.starts_with("/api/public/"),
                    "{:?} reads as the public route's {:?}", raw, upstream_view
                );
            }
        }
    }
}

#[test]
fn the_generator_reaches_every_route_and_refusal() {
    // Guards the properties above against a generator that never produces what they test.
    let table = table();
    let mut seen = std::collections::BTreeSet::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..20_000 {
        let raw = raw_path().new_tree(&mut runner).unwrap().current();
        let kind = match table.resolve("h", &raw, &Organizations::default()) {
            Ok(Endpoint::Route { route, .. }) => route.prefix.clone(),
            Ok(_) => "other".into(),
            Err(_) => "refused".into(),
        };
        seen.insert(kind);
    }
    for kind in ["/api/", "/api/public/", "/admin/", "refused", "other"] {
        assert!(seen.contains(kind), "never produced {kind}: {seen:?}");
    }
}
