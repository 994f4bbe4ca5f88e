// openid-client 6 as the portal at FAPI 2.0: PAR + DPoP + private_key_jwt + PKCE.
// Driven by tests/test_interop_openid_client.py over stdin/stdout, one JSON object a line:
//   out {"authorize": url}          the browser goes there (PAR already done)
//   in  {"callback": url}           where the browser came back to
//   out {"tokens": ..., "refreshed": ..., "userinfo": ...}
import * as client from 'openid-client';
import { createInterface } from 'node:readline';

const { issuer, clientId, privateJwk, redirectUri } = JSON.parse(process.env.RP_CONFIG);
const reader = createInterface({ input: process.stdin });
const lines = reader[Symbol.asyncIterator]();
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

try {
  const privateKey = await crypto.subtle.importKey(
    'jwk', privateJwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const config = await client.discovery(
    new URL(issuer), clientId, undefined,
    client.PrivateKeyJwt({ key: privateKey, kid: privateJwk.kid }),
    { execute: [client.allowInsecureRequests] });
  const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));

  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirectUri,
    scope: 'openid email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  }, { DPoP: dpop });
  say({ authorize: url.href });

  const { value } = await lines.next();
  const callback = new URL(JSON.parse(value).callback);
  const tokens = await client.authorizationCodeGrant(
    config, callback, { pkceCodeVerifier: verifier, expectedState: state }, undefined, { DPoP: dpop });
  const claims = tokens.claims();
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop });
  const userinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub, { DPoP: dpop });
  say({ tokens, claims, refreshed, userinfo });
} catch (err) {
  say({ error: String(err), code: err.code, cause: err.cause ? String(JSON.stringify(err.cause)) : undefined });
  process.exitCode = 1;
} finally {
  reader.close();
}
