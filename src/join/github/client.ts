import { MwiError } from '../../errors.js';
import { jwtClient } from '../jwt/client.js';

/**
 * Asks the GitHub Actions runtime for an ID token with the cluster name as audience
 * (ACTIONS_ID_TOKEN_REQUEST_URL / ACTIONS_ID_TOKEN_REQUEST_TOKEN, set only with
 * `permissions: id-token: write`).
 */
export async function githubToken(audience: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const url = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !bearer) {
    throw new MwiError(
      'BAD_CONFIG',
      'ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: the workflow (or job) needs ' +
        '"permissions: id-token: write"',
      {
        field: 'onboarding.join_method github',
      },
    );
  }
  const u = new URL(url);
  u.searchParams.set('audience', audience);
  const res = await fetch(u, {
    headers: { authorization: `Bearer ${bearer}`, accept: 'application/json' },
    signal: AbortSignal.timeout(15_000),
  });
  if (!res.ok) throw new MwiError('UNREACHABLE', `the GitHub Actions token endpoint answered HTTP ${res.status}`);
  const body = (await res.json()) as { value?: unknown };
  if (typeof body.value !== 'string')
    throw new MwiError('UNREACHABLE', 'the GitHub Actions token endpoint sent no token');
  return body.value;
}

export const githubClient = jwtClient('github', (audience) => githubToken(audience));
