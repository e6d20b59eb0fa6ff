// The authorization server of the OAuth2 tests: oauth2-mock-server (npm, installed by
// contrib/install-test-servers.sh under $ARCTERN_OAUTH2_MOCK) serving /authorize (PKCE),
// /token (authorization code, refresh) and /jwks on 127.0.0.1:$PORT, behind a small front that
// adds what a real provider does and the mock leaves out:
// - access tokens live $TTL seconds and carry the claim `username` = $MAIL_USER, which the
//   test Dovecot's oauth2 passdb checks;
// - /introspect (RFC 7662, form-encoded as Dovecot posts it) verifies the token's signature
//   and expiry with the mock's own key and refuses revoked tokens;
// - /revoke (RFC 7009) revokes an access or refresh token; a refresh with a revoked or unknown
//   refresh token is answered `invalid_grant`, as Google and Microsoft answer one;
// - /device_authorization (RFC 8628) with an approval that completes after the first poll;
// - /stats counts the token requests by grant type.
// Prints "ready" once listening. Stopped by its PID.
const base = process.env.ARCTERN_OAUTH2_MOCK;
const modules = `${base}/node_modules`;
const { OAuth2Server } = await import(`${modules}/oauth2-mock-server/dist/index.mjs`);
const jose = await import(`${modules}/jose/dist/webapi/index.js`);
const express = (await import(`${modules}/express/index.js`)).default;
const port = Number(process.env.PORT);
const ttl = Number(process.env.TTL || '3600');
const mailUser = process.env.MAIL_USER || 'alice';

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.issuer.url = `http://127.0.0.1:${port}`;
const service = server.service;

const revoked = new Set();
const issuedRefresh = new Set();
const stats = { authorization_code: 0, refresh_token: 0, device_code: 0 };
const devices = new Map();

service.on('beforeTokenSigning', (token) => {
  const now = Math.floor(Date.now() / 1000);
  token.payload.exp = now + ttl;
  token.payload.username = mailUser;
  token.payload.jti = crypto.randomUUID();
});

service.on('beforeResponse', (response, req) => {
  const grant = req.body.grant_type;
  if (grant in stats) stats[grant] += 1;
  if (grant === 'refresh_token') {
    const presented = req.body.refresh_token;
    if (!issuedRefresh.has(presented) || revoked.has(presented)) {
      response.statusCode = 400;
      response.body = { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' };
      return;
    }
  }
  if (response.statusCode === 200 && response.body.access_token) {
    response.body.expires_in = ttl;
    if (response.body.refresh_token) issuedRefresh.add(response.body.refresh_token);
  }
});

function json(res, status, body) {
  res.status(status).set('Cache-Control', 'no-store').json(body);
}

async function introspect(token) {
  if (!token || revoked.has(token)) return { active: false };
  try {
    const jwks = jose.createLocalJWKSet({ keys: server.issuer.keys.toJSON() });
    const { payload } = await jose.jwtVerify(token, jwks);
    if (revoked.has(payload.jti)) return { active: false };
    return { active: true, username: payload.username, exp: payload.exp, scope: payload.scope };
  } catch {
    return { active: false };
  }
}

// The front: its routes first (form bodies parsed here; the mock's own parser then leaves
// them), the mock for the rest.
const front = express();
front.use(express.urlencoded({ extended: false }));
front.post('/introspect', async (req, res) => json(res, 200, await introspect(req.body.token)));
front.post('/revoke', (req, res) => {
  revoked.add(req.body.token);
  try {
    const claims = jose.decodeJwt(req.body.token);
    if (claims.jti) revoked.add(claims.jti);
  } catch { /* a refresh token is opaque */ }
  res.status(200).end();
});
front.post('/device_authorization', (req, res) => {
  const device = crypto.randomUUID();
  devices.set(device, { polls: 0 });
  json(res, 200, {
    device_code: device,
    user_code: 'WDJB-MJHT',
    verification_uri: `http://127.0.0.1:${port}/device`,
    expires_in: 600,
    interval: 1,
  });
});
front.post('/token', async (req, res, next) => {
  // The device-code grant, which the mock lacks: pending once, then a token pair.
  if (req.body.grant_type !== 'urn:ietf:params:oauth:grant-type:device_code') return next();
  stats.device_code += 1;
  const d = devices.get(req.body.device_code);
  if (!d) return json(res, 400, { error: 'invalid_grant' });
  d.polls += 1;
  if (d.polls < 2) return json(res, 400, { error: 'authorization_pending' });
  devices.delete(req.body.device_code);
  const access = await service.buildToken(req, ttl, (_h, p) => {
    p.exp = Math.floor(Date.now() / 1000) + ttl;
    p.username = mailUser;
    p.jti = crypto.randomUUID();
  });
  const refresh = crypto.randomUUID();
  issuedRefresh.add(refresh);
  json(res, 200, { access_token: access, token_type: 'Bearer', expires_in: ttl, refresh_token: refresh });
});
front.get('/stats', (_req, res) => json(res, 200, stats));
front.use(service.requestHandler);

front.listen(port, '127.0.0.1', () => {
  console.log('ready');
});
