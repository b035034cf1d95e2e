/**
 * A real OpenID provider for tests (oidc-provider, an OpenID-certified implementation), run as its own process over
 * HTTP: discovery, JWKS and a token endpoint, as Keycloak or Entra ID serve them. Chosen over a Keycloak container for
 * CI: it starts in about a second in ~60 MB, where Keycloak takes tens of seconds and over 500 MB, and needs no
 * container engine.
 *
 * Its clients use the client-credentials grant (RFC 6749 §4.4) with a resource indicator (RFC 8707) naming the
 * audience: no browser, no login page, and the access token is a signed JWT from the provider's own key, exactly the
 * kind Holdfast checks for people. Each client stands for one test user: `extraTokenClaims` adds its roles (nested, as
 * Keycloak's `realm_access.roles`) and sites.
 *
 * Prints `OIDC_READY <issuer>` once listening. argv[2]: JSON of { audiences, clients: [{ id, secret, name, roles,
 * sites }] }.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

interface TestClient {
  id: string;
  secret: string;
  name: string;
  roles: string[];
  sites: string[];
}

async function main(): Promise<void> {
  const { audiences, clients } = JSON.parse(process.argv[2] ?? '{}') as { audiences: string[]; clients: TestClient[] };
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const signing = { ...(await exportJWK(privateKey)), kid: 'oidc-test-es256', alg: 'ES256', use: 'sig' };

  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.id,
      client_secret: c.secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
      // The provider's only key is ES256; its default (RS256) would need an RSA key too.
      id_token_signed_response_alg: 'ES256',
    })),
    jwks: { keys: [signing] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audiences[0]!,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (!audiences.includes(resource)) throw new Error(`unknown resource ${resource}`);
          return {
            scope: 'holdfast',
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    extraTokenClaims: (_ctx, token) => {
      const client = clients.find((c) => c.id === (token as { clientId?: string }).clientId);
      return client ? { name: client.name, realm_access: { roles: client.roles }, sites: client.sites } : {};
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`OIDC_READY ${issuer}\n`);
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`oidc provider failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
