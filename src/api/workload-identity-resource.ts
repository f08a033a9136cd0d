import { z } from 'zod';
import { parseDuration } from '../util/duration.js';

// The `workload_identity` resource, in Teleport's shape (teleport/workloadidentity/v1/resource.proto):
// what SPIFFE ID, hint and DNS SANs an SVID carries, and the rules a request's attributes must pass.

/** `{{ workload.unix.uid }}`: one attribute name between double braces, nothing else. */
export const TEMPLATE = /\{\{\s*([a-zA-Z0-9_.-]+)\s*\}\}/g;
/** The roots attribute names start with (Teleport's): the workload's, the bot's, its join's. */
export const ATTRIBUTE_NAME = /^(workload|user|join)\.[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_/-]+)*$/;

/**
 * Control characters (C0, DEL, C1) and the bidirectional marks and overrides (U+061C, U+200E,
 * U+200F, U+202A-U+202E, U+2066-U+2069): text that would show one thing and hold another.
 */
// eslint-disable-next-line no-control-regex
export const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
export const UNSAFE_TEXT_MESSAGE = 'control characters and bidirectional overrides are not allowed';

/**
 * Why a templated field is malformed, if it is: control or bidirectional characters, an unclosed
 * `{{` or a stray brace, a name that is no attribute, or two templates side by side (`{{a}}{{b}}`:
 * "ab"+"c" and "a"+"bc" would give one ID).
 */
export function templateProblem(value: string): string | undefined {
  if (UNSAFE_TEXT.test(value)) return UNSAFE_TEXT_MESSAGE;
  const rest = value.replace(TEMPLATE, (_, name: string) => (ATTRIBUTE_NAME.test(name) ? '\u0001' : '\u0000'));
  if (rest.includes('\u0000'))
    return 'a template names an attribute such as {{ workload.unix.uid }}, {{ user.bot_name }} or {{ join.* }}';
  if (rest.includes('{{') || rest.includes('}}')) return 'unbalanced {{ }} in a template';
  if (rest.includes('{') || rest.includes('}'))
    return 'a stray "{" or "}" next to a template: write {{ attribute }} with exactly two braces each side';
  if (rest.replace(/\s+/g, '').includes('\u0001\u0001'))
    return (
      'two templates side by side: put a separator between them ("{{ a }}-{{ b }}" or "{{ a }}/{{ b }}"), ' +
      'else different values would give the same result'
    );
  return undefined;
}

const templated = (max: number) =>
  z
    .string()
    .max(max)
    .superRefine((v, ctx) => {
      const p = templateProblem(v);
      if (p) ctx.addIssue({ code: 'custom', message: p });
    });

const DURATION = z.string().refine((s) => parseDuration(s) !== undefined, 'expected a duration such as 1h or 30m');
const VALUE = z.string().max(1024);

/** One condition on an attribute: exactly one of eq, not_eq, in, not_in (Teleport's oneof). */
export const conditionSchema = z
  .object({
    attribute: z.string().regex(ATTRIBUTE_NAME, 'expected an attribute name such as workload.unix.uid'),
    eq: z.object({ value: VALUE }).strict().optional(),
    not_eq: z.object({ value: VALUE }).strict().optional(),
    in: z
      .object({ values: z.array(VALUE).max(256) })
      .strict()
      .optional(),
    not_in: z
      .object({ values: z.array(VALUE).max(256) })
      .strict()
      .optional(),
  })
  .strict()
  .refine(
    (c) => [c.eq, c.not_eq, c.in, c.not_in].filter((o) => o !== undefined).length === 1,
    'exactly one of eq, not_eq, in or not_in',
  );
export type Condition = z.infer<typeof conditionSchema>;

const ruleSchema = z
  .object({
    conditions: z.array(conditionSchema).max(64).default([]),
    /** Teleport's predicate language: mwi has none; refused rather than ignored (it would allow more). */
    expression: z
      .string()
      .max(0, "mwi does not evaluate Teleport's predicate expressions: write the rule as conditions")
      .optional(),
  })
  .strict();

export const workloadIdentitySchema = z
  .object({
    kind: z.literal('workload_identity'),
    sub_kind: z.string().optional(),
    version: z.literal('v1').default('v1'),
    metadata: z
      .object({
        name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$/, 'expected letters, digits, ".", "_", "@" or "-"'),
        expires: z.string().optional(),
        description: z.string().optional(),
        labels: z.record(z.string()).optional(),
        revision: z.string().optional(),
        namespace: z.string().optional(),
      })
      .strict(),
    spec: z
      .object({
        rules: z
          .object({ allow: z.array(ruleSchema).max(64).default([]) })
          .strict()
          .default({}),
        spiffe: z
          .object({
            id: templated(2048).refine((s) => s.startsWith('/'), 'a SPIFFE ID path starts with "/"'),
            hint: templated(1024).default(''),
            x509: z
              .object({
                dns_sans: z.array(templated(253)).max(32).default([]),
                maximum_ttl: DURATION.optional(),
              })
              .strict()
              .default({}),
            jwt: z.object({ maximum_ttl: DURATION.optional() }).strict().default({}),
          })
          .strict(),
      })
      .strict(),
  })
  .strict();
export type WorkloadIdentity = z.infer<typeof workloadIdentitySchema>;
