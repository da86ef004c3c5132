// A client that knows only an issuer URL, a client id and a secret, as an integration of an
// organisation would: it discovers the token endpoint and the JWKS from the issuer's metadata
// (OIDC discovery, or RFC 8414 with `oauth2`), gets a token by client credentials, verifies
// it against the discovered JWKS, and introspects it. Prints one JSON line.
//
// usage: node client.mjs ISSUER CLIENT_ID SECRET AUDIENCE oidc|oauth2
import * as client from 'openid-client';
import * as jose from 'jose';

const [issuer, clientId, secret, audience, algorithm] = process.argv.slice(2);
const config = await client.discovery(
  new URL(issuer),
  clientId,
  undefined,
  client.ClientSecretBasic(secret),
  { algorithm, execute: [client.allowInsecureRequests] },
);
const metadata = config.serverMetadata();
const tokens = await client.clientCredentialsGrant(config);
const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));
const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, {
  issuer: metadata.issuer,
  audience,
  typ: 'at+jwt',
});
const introspection = await client.tokenIntrospection(config, tokens.access_token);
console.log(JSON.stringify({
  token_endpoint: metadata.token_endpoint,
  jwks_uri: metadata.jwks_uri,
  introspection_endpoint: metadata.introspection_endpoint,
  alg: protectedHeader.alg,
  claims: payload,
  introspection,
  access_token: tokens.access_token,
}));
