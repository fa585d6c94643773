// An OpenID Certified authorization server (oidc-provider) for the tests:
// dynamic registration of public clients, authorization code with PKCE
// S256, the development login and consent pages (any login, any password;
// the login becomes `sub`) and RFC 9068 JWT access tokens signed with ES256
// for the protected resources named on the command line. Discovery, the
// token endpoint and registration answer pages of any origin (CORS).
//
//   node provider.mjs --resource http://127.0.0.1:8080/mcp \
//     [--resource URL ...] [--scopes "keys:read keys:write mcp"] [--port N]
//
// Prints one JSON line on stdout once listening, `{"issuer":"http://127.0.0.1:PORT"}`,
// and nothing else there (oidc-provider's notices go to stderr). A fresh
// P-256 signing key is made at every start, so restarting on the same
// `--port` is a key rotation. Exits when stdin closes (the test that
// started it is gone) and on SIGTERM or SIGINT.
//
// Also read from the environment: OAUTH_RESOURCES (space-separated),
// OAUTH_SCOPES, OAUTH_PORT.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// stdout carries the issuer line alone.
console.log = console.error;
console.info = console.error;

const { values: args } = parseArgs({
  options: {
    resource: { type: 'string', multiple: true },
    scopes: { type: 'string' },
    port: { type: 'string' },
  },
});

const resources = args.resource ?? (process.env.OAUTH_RESOURCES ?? '').split(/\s+/).filter(Boolean);
const scopes = args.scopes ?? process.env.OAUTH_SCOPES ?? 'mcp';
const port = Number(args.port ?? process.env.OAUTH_PORT ?? 0);
if (resources.length === 0) {
  console.error('provider.mjs: at least one --resource URL is required');
  process.exit(2);
}

// The signing key: new at each start, with a random kid.
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  alg: 'ES256',
  use: 'sig',
};

// Listen first: with port 0 the issuer is known only once bound.
let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
server.on('error', (error) => {
  console.error(`provider.mjs: ${error.message}`);
  process.exit(1);
});
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  // The resource's scopes are the server's too: registration accepts only
  // scopes listed here (MCP clients register with the resource's), and
  // discovery's scopes_supported names them.
  scopes: ['openid', 'offline_access', ...scopes.split(/\s+/).filter(Boolean)],
  // The account is the login typed into the development form.
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resources[0],
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, resourceIndicator) {
        if (!resources.includes(resourceIndicator)) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: scopes,
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  // Only an EC key is configured, so ID tokens and the rest use ES256 too.
  clientDefaults: {
    id_token_signed_response_alg: 'ES256',
    token_endpoint_auth_method: 'none',
  },
  enabledJWA: {
    idTokenSigningAlgValues: ['ES256'],
    userinfoSigningAlgValues: ['ES256'],
    introspectionSigningAlgValues: ['ES256'],
    authorizationSigningAlgValues: ['ES256'],
  },
  pkce: { required: () => true },
  // Pages served from any test origin may call the token endpoint.
  clientBasedCORS: () => true,
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
});

// The development pages' stylesheet imports a web font; without it no
// page of a test reaches beyond loopback.
provider.use(async (ctx, next) => {
  await next();
  if (typeof ctx.body === 'string' && ctx.type === 'text/html') {
    ctx.body = ctx.body.replace(/@import url\([^)]*\);/g, '');
  }
});

// A web page registers itself from the browser (RFC 7591 by a public
// client, as the example's settings page does), so the registration
// endpoint (oidc-provider's default route) answers pages of any origin, as
// discovery and the token endpoint already do; oidc-provider gives it no
// CORS of its own. Nothing is sent with credentials, hence `*`.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/reg') {
    return next();
  }
  ctx.set('Access-Control-Allow-Origin', '*');
  if (ctx.method === 'OPTIONS') {
    ctx.set('Access-Control-Allow-Methods', 'POST');
    ctx.set('Access-Control-Allow-Headers', 'Content-Type');
    ctx.set('Access-Control-Max-Age', '600');
    ctx.status = 204;
    return undefined;
  }
  return next();
});

handler = provider.callback();
process.stdout.write(`${JSON.stringify({ issuer })}\n`);

function stop() {
  server.closeAllConnections();
  server.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The parent holds our stdin; it closes when the parent exits or drops it.
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
