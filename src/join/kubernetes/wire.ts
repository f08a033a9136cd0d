import { z } from 'zod';

/** `spec.kubernetes` (Teleport's field names). */
export const kubernetesSpec = z
  .object({
    type: z.enum(['in_cluster', 'static_jwks', 'oidc']).default('in_cluster'),
    static_jwks: z
      .object({ jwks: z.string().min(1), issuer: z.string().url().optional() })
      .strict()
      .optional(),
    oidc: z
      .object({
        issuer: z.string().url(),
        /** Teleport's opt-in for an http:// issuer (its keys then come over plain http). */
        insecure_allow_http_issuer: z.boolean().optional(),
      })
      .strict()
      .refine(
        (o) => o.issuer.startsWith('https://') || (o.insecure_allow_http_issuer && o.issuer.startsWith('http://')),
        {
          message: 'must be https:// unless insecure_allow_http_issuer is set',
          path: ['issuer'],
        },
      )
      .optional(),
  })
  .strict()
  .refine((s) => s.type !== 'static_jwks' || s.static_jwks, {
    message: 'type static_jwks needs static_jwks.jwks',
    path: ['static_jwks'],
  })
  .refine((s) => s.type !== 'oidc' || s.oidc, { message: 'type oidc needs oidc.issuer', path: ['oidc'] });
export type KubernetesSpec = z.infer<typeof kubernetesSpec>;

/** `allow: [{service_account: "namespace:name"}]`. */
export const KUBERNETES_ALLOW = {
  service_account: {
    claim: 'service_account',
    format: { pattern: /^[^:\s]+:[^:\s]+$/, hint: 'expected namespace:name (a service account)' },
  },
} as const;

/** Every rule names one service account (Teleport's rule). */
export const KUBERNETES_REQUIRED = [['service_account']] as const;

export const DEFAULT_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';
