// A real OpenID Connect provider (the `oidc-provider` package) on an ephemeral loopback port,
// for the console's sign-in tests. Any login and password are accepted (the package's
// development interactions); the login is the account's email. Prints one JSON line
// {"issuer": "http://127.0.0.1:PORT"} once it listens.
//
// node oidc_provider.mjs REDIRECT_URI CLIENT_ID CLIENT_SECRET [GROUPS_JSON]
//   GROUPS_JSON: {"zed@example.com": ["security"]}, the `groups` claim of each account.
// An account whose login starts with `unverified` has `email_verified: false`; one whose login
// starts with `noverified` has no `email_verified` claim at all; one whose login starts with
// `stringverified` has `email_verified: "true"` (a string, not the boolean).
import http from 'node:http';
import Provider from 'oidc-provider';

const [redirectUri, clientId, clientSecret, groupsJson] = process.argv.slice(2);
if (!redirectUri || !clientId || !clientSecret) {
  console.error('usage: node oidc_provider.mjs REDIRECT_URI CLIENT_ID CLIENT_SECRET [GROUPS_JSON]');
  process.exit(2);
}
const groups = JSON.parse(groupsJson || '{}');
// stdout carries only the issuer line (the caller may stop reading it); the package's notices
// go to stderr.
const print = console.log.bind(console);
console.log = console.error;
console.info = console.error;

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: ['countersign-test-cookie-key'] },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          const claims = { sub: id, email: id, groups: groups[id] || [] };
          if (id.startsWith('stringverified')) {
            claims.email_verified = 'true';
          } else if (!id.startsWith('noverified')) {
            claims.email_verified = !id.startsWith('unverified');
          }
          return claims;
        },
      };
    },
  });
  server.on('request', provider.callback());
  print(JSON.stringify({ issuer }));
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
