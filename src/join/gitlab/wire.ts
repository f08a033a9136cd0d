import { z } from 'zod';

/** `spec.gitlab` (Teleport's field names). */
export const gitlabSpec = z
  .object({
    /** GitLab host; the issuer is https://DOMAIN. */
    domain: z
      .string()
      .regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'expected a host name')
      .default('gitlab.com'),
    static_jwks: z.string().optional(),
  })
  .strict();
export type GitlabSpec = z.infer<typeof gitlabSpec>;

/** `allow` fields → GitLab CI `id_tokens` claims; glob matching where Teleport has it. */
export const GITLAB_ALLOW = {
  sub: { claim: 'sub', match: 'glob' },
  namespace_path: { claim: 'namespace_path', match: 'glob' },
  project_path: { claim: 'project_path', match: 'glob' },
  pipeline_source: { claim: 'pipeline_source' },
  environment: { claim: 'environment', match: 'glob' },
  ref: { claim: 'ref', match: 'glob' },
  ref_type: { claim: 'ref_type' },
  ref_protected: { claim: 'ref_protected', type: 'boolean' },
  environment_protected: { claim: 'environment_protected', type: 'boolean' },
  user_login: { claim: 'user_login', match: 'glob' },
  user_email: { claim: 'user_email', match: 'glob' },
  // exact, as in Teleport; GitLab's ID token has a claim of the same name for each
  user_id: { claim: 'user_id' },
  ci_config_sha: { claim: 'ci_config_sha' },
  /** The pipeline definition, e.g. gitlab.example.com/grp/app//.gitlab-ci.yml@refs/heads/main. */
  ci_config_ref_uri: { claim: 'ci_config_ref_uri' },
  deployment_tier: { claim: 'deployment_tier' },
  /** public, internal or private. */
  project_visibility: { claim: 'project_visibility' },
} as const;

/**
 * A rule names the project, its namespace, the subject or the pipeline definition (Teleport's
 * rule), not by wildcards alone.
 */
export const GITLAB_REQUIRED = [['sub', 'project_path', 'namespace_path', 'ci_config_ref_uri']] as const;
