//! Test harness: runs the real `credgate` binary on free loopback ports with its own config,
//! registry and keys in a temporary directory, and talks HTTP to it.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod upstream;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credgate::testing::hash_secret;

pub const BIN: &str = env!("CARGO_BIN_EXE_credgate");

/// The form field of every client-credentials token request.
pub const GRANT: (&str, &str) = ("grant_type", "client_credentials");

/// Copies `pipe` into `file` from a thread of its own, reading nothing while `stalled` is set.
fn copy_log(mut pipe: impl Read + Send + 'static, mut file: File, stalled: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        loop {
            while stalled.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => file
                    .write_all(&buffer[..n])
                    .expect("the log file takes the copy"),
            }
        }
    });
}

/// A port nobody listens on right now (the OS picks it; we release it for the gateway).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports: all are held open until all are picked, or the OS could hand the
/// same port out twice.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("a bound address").port())
}

/// A `[[client]]` entry with one secret; `extra` lines go into the client table and
/// `secret_extra` into its secret table.
pub fn client_toml(id: &str, secret: &str, extra: &str, secret_extra: &str) -> String {
    format!(
        "[[client]]\nid = \"{id}\"\nname = \"Client {id}\"\n{extra}\n\n[[client.secret]]\ndescription = \"test\"\nhash = \"{}\"\n{secret_extra}\n\n",
        hash_secret(secret)
    )
}

/// What a test gateway is started with.
#[derive(Clone)]
pub struct Setup {
    pub registry: String,
    /// Extra lines for the `[issuer]` table.
    pub issuer_extra: String,
    /// Tables appended to the config (`[[route]]`, `[guard]`).
    pub tables: String,
    /// Extra lines for the `[server]` table.
    pub server_extra: String,
    /// Use this registry (file or directory) instead of writing one into the home directory.
    pub registry_path: Option<PathBuf>,
    /// `RUST_LOG` of the gateway process.
    pub log_level: String,
    /// `[server] grace_period`; tests that do not test shutdown want none.
    pub grace_period: String,
    /// `[registry] watch`.
    pub watch: bool,
    /// An existing directory to use as the gateway's home instead of a fresh one.
    pub home: Option<PathBuf>,
    /// `[issuer] issuer`, when not the gateway's own address (instances sharing one name).
    pub issuer_url: Option<String>,
    /// `[issuer] keys_dir`, when not `keys` in the home directory (instances sharing keys).
    pub keys_dir: Option<PathBuf>,
    /// `[organizations] issuer_template` (`PORT` stands for the gateway's port): serve the
    /// organisation files of `orgs/` in the home directory instead of a registry.
    pub issuer_template: Option<String>,
    /// Organisation files written into `orgs/` at start: (`acme`, text of `acme.toml`).
    pub org_files: Vec<(String, String)>,
    /// stderr is a pipe that a thread copies into the log file, and that the test can stop
    /// reading ([`Gateway::stall_log`]), as a stuck journald would.
    pub log_pipe: bool,
}

impl Setup {
    pub fn new(registry: impl Into<String>) -> Self {
        Setup {
            registry: registry.into(),
            issuer_extra: String::new(),
            tables: String::new(),
            server_extra: String::new(),
            registry_path: None,
            log_level: "info".into(),
            grace_period: "0s".into(),
            watch: true,
            home: None,
            issuer_url: None,
            keys_dir: None,
            issuer_template: None,
            org_files: Vec::new(),
            log_pipe: false,
        }
    }

    /// stderr goes through a pipe the test can stop reading ([`Gateway::stall_log`]).
    pub fn log_pipe(mut self) -> Self {
        self.log_pipe = true;
        self
    }

    /// Serves organisations from `orgs/` in the home directory, with `template` (`PORT` stands
    /// for the gateway's port) and these organisation files (id, text).
    pub fn organizations(template: &str, files: &[(&str, String)]) -> Self {
        let mut setup = Setup::new("");
        setup.issuer_template = Some(template.into());
        setup.org_files = files
            .iter()
            .map(|(id, text)| (id.to_string(), text.clone()))
            .collect();
        setup
    }

    /// Serves the registry at `path` as it is (the test manages its files).
    pub fn registry_path(mut self, path: &Path) -> Self {
        self.registry_path = Some(path.to_path_buf());
        self
    }

    /// Extra lines for the `[server]` table.
    pub fn server(mut self, lines: &str) -> Self {
        self.server_extra.push_str(lines);
        self.server_extra.push('\n');
        self
    }

    /// Appends TOML tables (`[[route]]`, `[guard]`) to the config; `@HOME@` stands for the
    /// gateway's home directory.
    pub fn tables(mut self, toml: &str) -> Self {
        self.tables.push_str(toml);
        self.tables.push('\n');
        self
    }

    pub fn issuer(mut self, lines: &str) -> Self {
        self.issuer_extra.push_str(lines);
        self.issuer_extra.push('\n');
        self
    }

    pub fn start(self) -> Gateway {
        Gateway::start(self)
    }
}

/// A running gateway process; killed when dropped.
pub struct Gateway {
    dir: Option<tempfile::TempDir>,
    setup: Setup,
    pub home: PathBuf,
    pub base: String,
    pub admin: String,
    pub config: PathBuf,
    child: Child,
    pub http: reqwest::Client,
    /// Set while the log pipe's reader stops reading (with [`Setup::log_pipe`]).
    log_stalled: Arc<AtomicBool>,
}

impl Gateway {
    fn start(setup: Setup) -> Gateway {
        let (mut dir, home) = match setup.home.clone() {
            Some(home) => (None, home),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let home = dir.path().to_path_buf();
                (Some(dir), home)
            }
        };
        let registry = home.join("clients.toml");
        if setup.issuer_template.is_some() {
            let orgs = home.join("orgs");
            if !orgs.exists() {
                std::fs::create_dir(&orgs).expect("orgs dir");
                for (id, text) in &setup.org_files {
                    std::fs::write(orgs.join(format!("{id}.toml")), text).expect("org file");
                }
            }
        } else if setup.home.is_none() || !registry.exists() {
            std::fs::write(&registry, &setup.registry).expect("write registry");
        }
        // A port picked free can be taken by someone else before we bind it: retry then.
        for _ in 0..5 {
            let [port, admin_port] = free_ports();
            let config = write_config(&home, port, admin_port, &setup);
            let log = std::fs::File::create(home.join("gateway.log")).expect("log file");
            let log_stalled = Arc::new(AtomicBool::new(false));
            let mut child = Command::new(BIN)
                .arg("--config")
                .arg(&config)
                .arg("serve")
                .env("RUST_LOG", &setup.log_level)
                .stdout(Stdio::null())
                .stderr(if setup.log_pipe {
                    Stdio::piped()
                } else {
                    log.try_clone().expect("log file").into()
                })
                .spawn()
                .expect("start credgate");
            if let Some(pipe) = child.stderr.take() {
                copy_log(pipe, log, log_stalled.clone());
            }
            let mut gateway = Gateway {
                dir,
                setup: setup.clone(),
                home: home.clone(),
                base: format!("http://127.0.0.1:{port}"),
                admin: format!("http://127.0.0.1:{admin_port}"),
                config,
                child,
                http: reqwest::Client::new(),
                log_stalled,
            };
            if gateway.wait_ready() {
                return gateway;
            }
            let log = gateway.log();
            assert!(
                log.contains("Address already in use") || log.contains("Address in use"),
                "the gateway did not start:\n{log}"
            );
            dir = gateway.dir.take();
        }
        panic!("no free ports for the gateway after 5 tries");
    }

    /// Waits until both listeners accept connections and the reloader watches for changes.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let admin_up =
                std::net::TcpStream::connect(self.admin.trim_start_matches("http://")).is_ok();
            let main_up =
                std::net::TcpStream::connect(self.base.trim_start_matches("http://")).is_ok();
            let watching = self.log().contains("reloader ready");
            if admin_up && main_up && watching {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the gateway did not come up in 30 s:\n{}", self.log());
    }

    /// Stops (`true`) or resumes reading the gateway's stderr; needs [`Setup::log_pipe`].
    pub fn stall_log(&self, stalled: bool) {
        assert!(self.setup.log_pipe, "only a log pipe can stall");
        self.log_stalled.store(stalled, Ordering::SeqCst);
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("gateway.log")).unwrap_or_default()
    }

    /// Stops the process and starts a new one on the same files (registry, keys).
    pub fn restart(mut self) -> Gateway {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let setup = Setup {
            home: Some(self.home.clone()),
            ..self.setup.clone()
        };
        let mut restarted = Gateway::start(setup);
        restarted.dir = self.dir.take();
        restarted
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The admin listener's /metrics, parsed strictly: series (with labels) → value.
    pub async fn metrics(&self) -> HashMap<String, f64> {
        let response = self
            .http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        parse_metrics(&response.text().await.unwrap())
    }

    /// A token for `client` (HTTP Basic with `secret`); panics unless one is issued.
    pub async fn access_token(&self, client: &str, secret: &str) -> String {
        let response = self.token(Some((client, secret)), &[GRANT]).await;
        assert_eq!(response.status(), 200, "a token for {client}");
        json(response).await["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// POSTs a client-credentials token request to `path` with HTTP Basic credentials.
    pub async fn token_at(&self, path: &str, client: &str, secret: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .basic_auth(client, Some(secret))
            .form(&[GRANT])
            .send()
            .await
            .expect("token request")
    }

    /// A token for `client` of organisation `org` from `/{org}/connect/token`; panics unless
    /// one is issued.
    pub async fn org_token(&self, org: &str, client: &str, secret: &str) -> String {
        let path = format!("/{org}/connect/token");
        let response = self.token_at(&path, client, secret).await;
        assert_eq!(response.status(), 200, "a token for {org}/{client}");
        json(response).await["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// The status of a token request for `client` with `secret` (HTTP Basic).
    pub async fn token_status(&self, client: &str, secret: &str) -> u16 {
        let response = self.token(Some((client, secret)), &[GRANT]).await;
        response.status().as_u16()
    }

    /// The status of `GET path` with `token` as the bearer token.
    pub async fn bearer_status(&self, path: &str, token: &str) -> u16 {
        let request = self.http.get(self.url(path)).bearer_auth(token);
        request.send().await.unwrap().status().as_u16()
    }

    /// GETs `path` from the main listener and returns its JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        json(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    /// POSTs a form to the token endpoint, optionally with HTTP Basic credentials.
    pub async fn token(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url("/connect/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        request.send().await.expect("token request")
    }

    /// Sends `signal` to the gateway process.
    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "signal {signal} could not be sent");
    }

    /// Waits up to `limit` for the process to exit; its exit status, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGHUP and waits until the gateway has logged the outcome of the reload.
    pub fn reload(&self) {
        let outcomes = |log: &str| log.matches("registry reload").count();
        let before = outcomes(&self.log());
        self.signal(libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while outcomes(&self.log()) == before {
            assert!(
                Instant::now() < deadline,
                "no reload logged:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `needle` has been logged `count` times.
    pub fn wait_for_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {count}x:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The gateway's signing key, to forge tokens with chosen claims.
    pub fn signing_key(&self) -> (jsonwebtoken::EncodingKey, String) {
        let keys = credgate::oauth::KeySet::load(
            &self.home.join("keys"),
            Default::default(),
            std::time::Duration::ZERO,
        )
        .expect("the gateway's keys");
        let key = keys.signing_key();
        let pem = std::fs::read(&key.file).unwrap();
        (
            jsonwebtoken::EncodingKey::from_ed_pem(&pem).unwrap(),
            key.kid.clone(),
        )
    }

    /// Runs the `credgate` CLI against this gateway's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.config, args)
    }
}

impl Drop for Gateway {
    /// Stops the process, then checks that nothing it logged in the whole test carries a token
    /// or a stored hash.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let log = self.log();
            assert!(!holds_a_jwt(&log), "a token in the gateway log:\n{log}");
            assert!(
                !log.contains("$argon2"),
                "a hash in the gateway log:\n{log}"
            );
        }
    }
}

/// Whether `text` holds a JWT: a segment that starts with `eyJ` (base64url of `{"`), runs on
/// for at least 10 more base64url characters and is followed by `.` and the next segment. A
/// random key id may hold `eyJ` (one start in a few thousand logs a 43-character kid with it),
/// but never followed by a dot.
pub fn holds_a_jwt(text: &str) -> bool {
    let base64url = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    text.match_indices("eyJ").any(|(at, _)| {
        let rest = &text.as_bytes()[at + 3..];
        let segment = rest.iter().take_while(|b| base64url(b)).count();
        segment >= 10
            && rest.get(segment) == Some(&b'.')
            && rest.get(segment + 1).is_some_and(base64url)
    })
}

/// Runs `credgate --config CONFIG ARGS...` and returns its output.
pub fn cli(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run credgate")
}

fn write_config(home: &Path, port: u16, admin_port: u16, setup: &Setup) -> PathBuf {
    let path = home.join("credgate.toml");
    let (issuer, registry) = match &setup.issuer_template {
        None => (
            format!(
                "issuer = \"{}\"",
                setup
                    .issuer_url
                    .clone()
                    .unwrap_or_else(|| format!("http://127.0.0.1:{port}"))
            ),
            format!(
                "[registry]\npath = \"{}\"\nwatch = {}",
                setup
                    .registry_path
                    .clone()
                    .unwrap_or_else(|| home.join("clients.toml"))
                    .display(),
                setup.watch
            ),
        ),
        Some(template) => (
            String::new(),
            format!(
                "[organizations]\ndir = \"{}\"\nissuer_template = \"{}\"\nwatch = {}",
                home.join("orgs").display(),
                template.replace("PORT", &port.to_string()),
                setup.watch
            ),
        ),
    };
    let text = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
grace_period = "{grace_period}"
{server_extra}

[issuer]
{issuer}
keys_dir = "{keys}"
audience = "test-api"
max_token_lifetime = "2h"
{issuer_extra}

{registry}

[admin]
listen = "127.0.0.1:{admin_port}"

{tables}
"#,
        keys = setup
            .keys_dir
            .clone()
            .unwrap_or_else(|| home.join("keys"))
            .display(),
        server_extra = setup.server_extra,
        grace_period = setup.grace_period,
        issuer_extra = setup.issuer_extra,
        tables = setup.tables.replace("@HOME@", &home.display().to_string()),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// The claims of a JWT, read without verifying it (the gateway's own tokens, in tests).
pub fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Parses the Prometheus text format strictly: every sample line is `name{labels} value`.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line:?}"
            );
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

pub async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.expect("a JSON body")
}

/// Asserts an OAuth error response: status, `error` code, and the Basic challenge or its absence.
pub async fn assert_oauth_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
    challenge: bool,
) {
    assert_eq!(response.status().as_u16(), status, "status");
    let header = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    if challenge {
        assert_eq!(header.as_deref(), Some("Basic realm=\"credgate\""));
    } else {
        assert_eq!(header, None, "no WWW-Authenticate expected");
    }
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json(response).await;
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}
