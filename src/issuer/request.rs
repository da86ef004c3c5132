//! Parsing and bounding a token request (RFC 6749 §4.4.2) and its client authentication
//! (§2.3.1: `client_secret_basic` or `client_secret_post`, never both).

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::error::OAuthError;

/// The largest request body the token endpoint reads.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Form parameters beyond this many are refused before any work is done.
const MAX_PARAMS: usize = 16;
/// Requested scopes beyond this many are refused.
pub const MAX_SCOPES: usize = 64;
/// Longest secret we will spend argon2 on; ours are 43 characters.
const MAX_SECRET_BYTES: usize = 512;

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
}

/// The client id and secret the request carried.
#[derive(Debug)]
pub struct Credentials {
    pub client_id: String,
    pub secret: Zeroizing<String>,
    pub method: AuthMethod,
}

/// A well-formed client-credentials token request.
#[derive(Debug)]
pub struct TokenRequest {
    pub credentials: Credentials,
    /// The requested scopes, or `None` for "everything the client may have".
    pub scope: Option<Vec<String>>,
}

/// A well-formed introspection request (RFC 7662 §2.1).
#[derive(Debug)]
pub struct IntrospectionRequest {
    pub credentials: Credentials,
    pub token: Zeroizing<String>,
}

/// Checks the form body and credentials of a POST to the token endpoint.
pub fn parse(
    content_type: Option<&[u8]>,
    authorization: Option<&[u8]>,
    body: &[u8],
) -> Result<TokenRequest, OAuthError> {
    let mut form = Form::from_body(content_type, body)?;
    match form.take("grant_type")? {
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
        Some(g) if g.as_str() == "client_credentials" => {}
        Some(_) => {
            return Err(OAuthError::unsupported_grant_type(
                "only grant_type=client_credentials is supported",
            ))
        }
    }
    let scope = form.take("scope")?.and_then(|s| {
        let scopes: Vec<String> = s
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        (!scopes.is_empty()).then_some(scopes)
    });
    if scope.as_ref().is_some_and(|s| s.len() > MAX_SCOPES) {
        return Err(OAuthError::invalid_scope(format!(
            "at most {MAX_SCOPES} scopes may be requested"
        )));
    }
    let credentials = client_credentials(authorization, &mut form)?;
    Ok(TokenRequest { credentials, scope })
}

/// Checks the form body and credentials of a POST to the introspection endpoint.
pub fn parse_introspection(
    content_type: Option<&[u8]>,
    authorization: Option<&[u8]>,
    body: &[u8],
) -> Result<IntrospectionRequest, OAuthError> {
    let mut form = Form::from_body(content_type, body)?;
    let token = form
        .take("token")?
        .ok_or_else(|| OAuthError::invalid_request("the token parameter is missing"))?;
    let credentials = client_credentials(authorization, &mut form)?;
    Ok(IntrospectionRequest { credentials, token })
}

/// `application/x-www-form-urlencoded`, with or without parameters such as `charset`.
fn is_form_content_type(value: Option<&[u8]>) -> bool {
    let Some(value) = value.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// Form parameters, each present at most once (RFC 6749 §3.2).
struct Form(Vec<(String, Zeroizing<String>)>);

impl Form {
    /// Parses `body` if `content_type` says it is a form.
    fn from_body(content_type: Option<&[u8]>, body: &[u8]) -> Result<Form, OAuthError> {
        if !is_form_content_type(content_type) {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        Self::parse(body)
    }

    fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let mut params: Vec<(String, Zeroizing<String>)> = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            if params.len() == MAX_PARAMS {
                return Err(OAuthError::invalid_request(format!(
                    "more than {MAX_PARAMS} parameters"
                )));
            }
            if params.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name:?} is repeated"
                )));
            }
            params.push((name.into_owned(), Zeroizing::new(value.into_owned())));
        }
        Ok(Form(params))
    }

    /// Removes and returns parameter `name`; an empty value counts as absent (RFC 6749 §3.1).
    fn take(&mut self, name: &str) -> Result<Option<Zeroizing<String>>, OAuthError> {
        let Some(i) = self.0.iter().position(|(n, _)| n == name) else {
            return Ok(None);
        };
        let (_, value) = self.0.swap_remove(i);
        Ok((!value.is_empty()).then_some(value))
    }
}

fn client_credentials(
    authorization: Option<&[u8]>,
    form: &mut Form,
) -> Result<Credentials, OAuthError> {
    let post_id = form.take("client_id")?;
    let post_secret = form.take("client_secret")?;
    let Some(header) = authorization else {
        return match (post_id, post_secret) {
            (Some(id), Some(secret)) => Ok(Credentials {
                client_id: bounded_id(id.to_string(), false)?,
                secret: bounded_secret(secret, false)?,
                method: AuthMethod::Post,
            }),
            _ => Err(OAuthError::invalid_client(
                "client authentication is required (HTTP Basic or client_id + client_secret)",
                true,
            )),
        };
    };
    if post_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method: HTTP Basic or client_secret in the body, not both",
        ));
    }
    let (id, secret) = decode_basic(header)?;
    if post_id.is_some_and(|p| *p != id) {
        return Err(OAuthError::invalid_request(
            "client_id differs from the Basic credentials",
        ));
    }
    Ok(Credentials {
        client_id: bounded_id(id, true)?,
        secret: bounded_secret(secret, true)?,
        method: AuthMethod::Basic,
    })
}

/// Decodes `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn decode_basic(header: &[u8]) -> Result<(String, Zeroizing<String>), OAuthError> {
    let malformed = || OAuthError::invalid_client("malformed HTTP Basic credentials", true);
    let header = std::str::from_utf8(header).map_err(|_| malformed())?;
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "the token endpoint accepts HTTP Basic client authentication only",
            true,
        ));
    }
    let decoded = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| malformed())?);
    let pair = std::str::from_utf8(&decoded).map_err(|_| malformed())?;
    let (id, secret) = pair.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id).ok_or_else(malformed)?;
    let secret = Zeroizing::new(form_decode(secret).ok_or_else(malformed)?.into_owned());
    Ok((id.into_owned(), secret))
}

/// application/x-www-form-urlencoded decoding of one value: `+` is a space, `%XX` a byte.
fn form_decode(text: &str) -> Option<Cow<'_, str>> {
    if !text.contains(['+', '%']) {
        return Some(Cow::Borrowed(text));
    }
    let spaced = text.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

fn bounded_id(id: String, basic: bool) -> Result<String, OAuthError> {
    if id.is_empty() || id.len() > crate::registry::validate::MAX_ID_LEN {
        return Err(OAuthError::invalid_client(
            "client authentication failed",
            basic,
        ));
    }
    Ok(id)
}

fn bounded_secret(secret: Zeroizing<String>, basic: bool) -> Result<Zeroizing<String>, OAuthError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
        return Err(OAuthError::invalid_client(
            "client authentication failed",
            basic,
        ));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&[u8]> = Some(b"application/x-www-form-urlencoded");

    fn basic(id: &str, secret: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))).into_bytes()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let auth = basic("my%20client", "p%3Ass+word%2B");
        let req = parse(FORM, Some(&auth), b"grant_type=client_credentials").unwrap();
        assert_eq!(req.credentials.client_id, "my client");
        assert_eq!(*req.credentials.secret, "p:ss word+");
        assert_eq!(req.credentials.method, AuthMethod::Basic);
        assert_eq!(req.scope, None);
    }

    #[test]
    fn post_credentials_and_scopes_are_read() {
        let body =
            b"grant_type=client_credentials&client_id=c&client_secret=s&scope=a.read+%20b.write";
        let req = parse(
            Some(b"application/x-www-form-urlencoded; charset=UTF-8"),
            None,
            body,
        )
        .unwrap();
        assert_eq!(req.credentials.method, AuthMethod::Post);
        assert_eq!(req.scope.unwrap(), ["a.read", "b.write"]);
    }

    #[test]
    fn every_malformed_request_gets_its_error() {
        let auth = basic("c", "s");
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, &'a [u8], &'a str);
        let cases: [Case; 11] = [
            (Some(b"application/json"), None, b"{}", "invalid_request"),
            (FORM, Some(&auth), b"", "invalid_request"),
            (FORM, Some(&auth), b"grant_type=password", "unsupported_grant_type"),
            (FORM, Some(&auth), b"grant_type=client_credentials&grant_type=client_credentials", "invalid_request"),
            (FORM, Some(&auth), b"grant_type=client_credentials&client_secret=s", "invalid_request"),
            (FORM, Some(&auth), b"grant_type=client_credentials&client_id=other", "invalid_request"),
            (FORM, None, b"grant_type=client_credentials", "invalid_client"),
            (FORM, None, b"grant_type=client_credentials&client_id=c", "invalid_client"),
            (FORM, Some(b"Bearer abc"), b"grant_type=client_credentials", "invalid_client"),
            (FORM, Some(b"Basic !!!"), b"grant_type=client_credentials", "invalid_client"),
            (FORM, Some(&auth), "grant_type=client_credentials&a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11&l=12&m=13&n=14&o=15&p=16".as_bytes(), "invalid_request"),
        ];
        for (content_type, authorization, body, code) in cases {
            let err = parse(content_type, authorization, body).unwrap_err();
            assert_eq!(err.code, code, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn introspection_needs_a_token_and_credentials() {
        let auth = basic("c", "s");
        let req = parse_introspection(FORM, Some(&auth), b"token=abc&token_type_hint=access_token")
            .unwrap();
        assert_eq!(*req.token, "abc");
        assert_eq!(
            parse_introspection(FORM, Some(&auth), b"")
                .unwrap_err()
                .code,
            "invalid_request"
        );
        assert_eq!(
            parse_introspection(FORM, None, b"token=abc")
                .unwrap_err()
                .code,
            "invalid_client"
        );
    }

    #[test]
    fn overlong_secrets_and_scope_lists_are_refused() {
        let long = "x".repeat(MAX_SECRET_BYTES + 1);
        let body = format!("grant_type=client_credentials&client_id=c&client_secret={long}");
        assert_eq!(
            parse(FORM, None, body.as_bytes()).unwrap_err().code,
            "invalid_client"
        );
        let scopes = vec!["s"; MAX_SCOPES + 1].join("+");
        let body =
            format!("grant_type=client_credentials&client_id=c&client_secret=s&scope={scopes}");
        assert_eq!(
            parse(FORM, None, body.as_bytes()).unwrap_err().code,
            "invalid_scope"
        );
    }
}
