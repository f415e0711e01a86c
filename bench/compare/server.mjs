// The Node oidc-provider (the library the old LoopBack service was built
// on), configured as oidcgate is for the comparison: client_credentials with
// RFC 9068 JWT access tokens through resource indicators, ES256 and RS256
// keys, opaque tokens for introspection, the in-memory adapter.
//
// PORT (default 3000) and ISSUER (default http://127.0.0.1:PORT) configure it.
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.env.PORT || 3000);
const issuer = process.env.ISSUER || `http://127.0.0.1:${port}`;
const secret = process.env.CLIENT_SECRET || 'compare-secret-compare-secret-0123456789';
const api = 'https://api.example.com';

async function key(alg, kid) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, alg, kid, use: 'sig' };
}

const client = (id) => ({
  client_id: id,
  client_secret: secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
});

const formats = {
  'jwt-es256': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
  'jwt-rs256': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } },
  opaque: { accessTokenFormat: 'opaque' },
};

const provider = new Provider(issuer, {
  clients: Object.keys(formats).map(client),
  jwks: { keys: [await key('ES256', 'es256'), await key('RS256', 'rs256')] },
  cookies: { keys: ['compare-cookie-key-compare-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => api,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, c) => ({
        scope: 'read write',
        audience: resource,
        accessTokenTTL: 3600,
        ...formats[c.clientId],
      }),
    },
  },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ${issuer} listening on 127.0.0.1:${port}`);
});
