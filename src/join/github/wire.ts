import { z } from 'zod';

/** `spec.github` (Teleport's field names). */
export const githubSpec = z
  .object({
    /** GitHub Enterprise Server host: issuer https://HOST/_services/token. */
    enterprise_server_host: z
      .string()
      .regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'expected a host name')
      .optional(),
    /** GitHub Enterprise Cloud with a customized issuer: https://token.actions.githubusercontent.com/SLUG. */
    enterprise_slug: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'expected a slug')
      .optional(),
    /** A JWKS to trust instead of fetching the issuer's (GHES without network access). */
    static_jwks: z.string().optional(),
  })
  .strict()
  .refine(
    (s) => !(s.enterprise_server_host && s.enterprise_slug),
    'enterprise_server_host and enterprise_slug are exclusive',
  );
export type GithubSpec = z.infer<typeof githubSpec>;

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';

/** The issuer a GitHub token must name. */
export function githubIssuer(s: GithubSpec): string {
  if (s.enterprise_server_host) return `https://${s.enterprise_server_host}/_services/token`;
  if (s.enterprise_slug) return `${GITHUB_ISSUER}/${s.enterprise_slug}`;
  return GITHUB_ISSUER;
}

/** `allow` rule fields → GitHub Actions token claims. */
export const GITHUB_ALLOW = {
  sub: { claim: 'sub' },
  repository: { claim: 'repository' },
  repository_owner: { claim: 'repository_owner' },
  workflow: { claim: 'workflow' },
  environment: { claim: 'environment' },
  actor: { claim: 'actor' },
  ref: { claim: 'ref' },
  ref_type: { claim: 'ref_type' },
} as const;

/** A rule names the repository, its owner or the exact subject (Teleport's rule). */
export const GITHUB_REQUIRED = [['repository', 'repository_owner', 'sub']] as const;
