// A local OpenID Connect provider (the npm package oidc-provider) for Vigil's tests and demo.
//
//   node provider.mjs <config.json>
//
// The JSON file gives the issuer (its URL, e.g. http://127.0.0.1:9400), the port to listen on,
// the clients (client_id, client_secret, redirect_uris) and the users (login, password, email,
// name, groups, tid). A user signs in on a plain login page with their password; consent is
// given for them (these are first-party clients). ID tokens carry email, name, groups and the
// user's tid (the organisation they belong to); access tokens are JWTs (RFC 9068) for the
// client itself (aud = client_id) with the same claims, verifiable against the JWKS.
// Signing keys are made at start: a restarted provider has new keys. State lives in memory.

import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";

import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const users = new Map(config.users.map((user) => [user.login, user]));
const byId = new Map(config.users.map((user) => [user.login, user]));
const CLAIMS = ["email", "email_verified", "name", "groups", "tid"];

function claimsOf(user) {
  return {
    email: user.email,
    email_verified: true,
    name: user.name,
    groups: user.groups || [],
    tid: user.tid,
  };
}

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: randomUUID(), use: "sig", alg: "RS256" };

const provider = new Provider(config.issuer, {
  clients: config.clients.map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"], groups: ["groups"], tid: ["tid"] },
  scopes: ["openid", "email", "profile", "groups", "tid", "offline_access"],
  // Claims of the scopes asked for go into the ID token too, not only to the userinfo endpoint.
  conformIdTokenClaims: false,
  pkce: { required: () => false },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // Without a resource parameter the access token is for the client itself: a JWT whose
      // audience is the client_id, which the client's API verifies against the JWKS.
      defaultResource: (ctx, client) => `urn:vigil:client:${client.clientId}`,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: "openid email profile groups tid",
        audience: client.clientId,
        accessTokenTTL: 600,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
  extraTokenClaims: async (ctx, token) => {
    const user = byId.get(token.accountId);
    return user ? { ...claimsOf(user), client_id: token.clientId } : undefined;
  },
  findAccount: async (ctx, id) => {
    const user = byId.get(id);
    if (!user) return undefined;
    return {
      accountId: id,
      claims: async () => ({ sub: id, ...claimsOf(user) }),
    };
  },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.proxy = true;

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function loginPage(uid, clientId, error) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Sign in - local identity provider</title></head>
<body><main><h1>Local identity provider</h1><p>Sign in to continue to <b>${escape(clientId)}</b>.</p>
${error ? `<p class="error" role="alert">${escape(error)}</p>` : ""}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Login <input id="login" name="login" autocomplete="username" autofocus required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
<button id="sign-in" type="submit">Sign in</button></form></main></body></html>`;
}

async function formBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error("body too large");
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

async function consent(req, res, details) {
  // First-party clients: the scopes and claims asked for are granted without a page.
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(" "));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(" "));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, url) {
  const details = await provider.interactionDetails(req, res);
  const login = url.pathname.endsWith("/login") && req.method === "POST";
  if (details.prompt.name === "consent") return consent(req, res, details);
  if (!login) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    return res.end(loginPage(details.uid, details.params.client_id));
  }
  const form = await formBody(req);
  const user = users.get(form.get("login") || "");
  if (!user || user.password !== form.get("password")) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    return res.end(loginPage(details.uid, details.params.client_id, "Unknown login or wrong password."));
  }
  await provider.interactionFinished(req, res, { login: { accountId: user.login } }, { mergeWithLastSubmission: false });
}

const handler = provider.callback();
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, config.issuer);
  if (url.pathname.startsWith("/interaction/")) {
    try {
      await interaction(req, res, url);
    } catch (error) {
      res.writeHead(400, { "content-type": "text/plain; charset=utf-8" });
      res.end(`interaction failed: ${error.message}`);
    }
    return;
  }
  handler(req, res);
});
server.listen(config.port, config.host || "127.0.0.1", () => {
  console.log(`oidc provider ${config.issuer} listening on ${config.host || "127.0.0.1"}:${config.port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
