//! An integration calling an API behind credgate, with the `oauth2` crate.
//!
//! It fetches a token with the client-credentials grant, keeps it until shortly before it
//! expires, and calls the demo API a few times with it:
//!
//! ```sh
//! cargo run --release                        # the demo gateway, in another terminal
//! cargo run --example client                 # the shipped demo client
//! cargo run --example client -- http://127.0.0.1:8080 ID SECRET /api/hello
//! ```

use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};

/// The shipped demo client (published in the README; never reuse it).
const DEMO_ID: &str = "demo-client";
const DEMO_SECRET: &str = "JAfGa_9r3WPXGPXKGf30_HVkgRAPZBV6V_apJKP61kY";

/// A token is renewed this long before it expires, so a request never leaves with a token
/// that dies on the way (clock skew, queuing).
const RENEW_BEFORE: Duration = Duration::from_secs(60);

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Gets tokens from credgate and hands out the current one.
struct Tokens {
    oauth: oauth2::basic::BasicClient<
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    http: reqwest::Client,
    current: Option<(String, Instant)>,
}

impl Tokens {
    fn new(gateway: &str, id: &str, secret: &str, http: reqwest::Client) -> Result<Self, Error> {
        let oauth = BasicClient::new(ClientId::new(id.into()))
            .set_client_secret(ClientSecret::new(secret.into()))
            .set_auth_type(AuthType::BasicAuth)
            .set_token_uri(TokenUrl::new(format!("{gateway}/connect/token"))?);
        Ok(Tokens {
            oauth,
            http,
            current: None,
        })
    }

    /// The cached token, or a new one when it is missing or about to expire.
    async fn get(&mut self) -> Result<&str, Error> {
        let fresh = |(_, renew_at): &(String, Instant)| Instant::now() < *renew_at;
        if !self.current.as_ref().is_some_and(fresh) {
            let response = self
                .oauth
                .exchange_client_credentials()
                .add_scope(Scope::new("demo.read".into()))
                .request_async(&self.http)
                .await?;
            let lifetime = response.expires_in().unwrap_or(Duration::from_secs(300));
            let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
            println!("new token, valid for {}s", lifetime.as_secs());
            self.current = Some((response.access_token().secret().clone(), renew_at));
        }
        Ok(&self.current.as_ref().expect("just set").0)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let (gateway, id, secret, path) = (
        arg(0, "http://127.0.0.1:8080"),
        arg(1, DEMO_ID),
        arg(2, DEMO_SECRET),
        arg(3, "/api/hello"),
    );
    // The oauth2 crate asks for a client that does not follow redirects (token responses
    // must come from the token endpoint itself).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut tokens = Tokens::new(&gateway, &id, &secret, http.clone())?;
    for _ in 0..3 {
        let token = tokens.get().await?;
        let response = http
            .get(format!("{gateway}{path}"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        println!("GET {path}: {status}, {} bytes", body.len());
    }
    Ok(())
}
