// panva's openid-client (certified RP library) as a relying party of an
// oidcgate, driven by provider/openidclient_test.go in two steps:
//
//   RP_CONFIG='{"issuer":…,"client_id":…,"client_secret":…,"redirect_uri":…}'
//   node rp.mjs start                              → {"url", "code_verifier", "state", "nonce"}
//   node rp.mjs finish CALLBACK VERIFIER STATE NONCE → {"claims", "userinfo"}
//
// The test's browser signs in between the two. http issuers are allowed:
// the test runs on loopback.
import * as client from 'openid-client';

const [cmd, ...args] = process.argv.slice(2);
const rp = JSON.parse(process.env.RP_CONFIG);
const config = await client.discovery(new URL(rp.issuer), rp.client_id, undefined,
  client.ClientSecretBasic(rp.client_secret), { execute: [client.allowInsecureRequests] });

if (cmd === 'start') {
  const code_verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: rp.redirect_uri, scope: 'openid profile email',
    code_challenge: await client.calculatePKCECodeChallenge(code_verifier), code_challenge_method: 'S256',
    state, nonce,
  });
  console.log(JSON.stringify({ url: url.href, code_verifier, state, nonce }));
} else if (cmd === 'finish') {
  const [callback, pkceCodeVerifier, expectedState, expectedNonce] = args;
  const tokens = await client.authorizationCodeGrant(config, new URL(callback),
    { pkceCodeVerifier, expectedState, expectedNonce, idTokenExpected: true });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  console.log(JSON.stringify({ claims, userinfo }));
} else {
  console.error('usage: node rp.mjs start | finish CALLBACK VERIFIER STATE NONCE');
  process.exit(2);
}
