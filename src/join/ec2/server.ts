import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { MwiError } from '../../errors.js';
import { formatDuration, parseDuration } from '../../util/duration.js';
import { ioReason } from '../../util/io-reason.js';
import { checkAllow, explainAllow } from '../jwt/allow.js';
import { assertAllowRules, type AllowPolicy } from '../jwt/rules.js';
import {
  JoinRefusal,
  type ExplainCheck,
  type ExplainInput,
  type JoinExplanation,
  type JoinHandler,
  type JoinTokenView,
  type ServerJoinMethod,
  type ServerSection,
} from '../types.js';
import { AWS_RSA2048_CERTIFICATES } from './certs.js';
import { documentBytes, verifyDocument, type InstanceIdentity } from './document.js';
import { firstUse } from './first-use.js';
import { DEFAULT_IID_TTL } from './wire.js';

/**
 * `spec.allow` rules of an ec2 token (Teleport's TokenRule): `aws_account` exactly, `aws_regions`
 * a list the document's region must be in. Teleport's `aws_role` (the role its Auth Service
 * assumes to call ec2:DescribeInstances) is kept in the token and not used: mwi does not call
 * AWS, so every rule must name its account.
 */
export const EC2_POLICY: AllowPolicy = {
  fields: {
    aws_account: { claim: 'aws_account', format: { pattern: /^\d{12}$/, hint: 'expected a 12-digit AWS account id' } },
    aws_regions: { claim: 'aws_region', type: 'strings' },
  },
  requireOneOf: [['aws_account']],
};

/** How far in the future a document's pendingTime may be (clock skew). */
const FUTURE_MS = 60_000;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

/** The rules as matched: `aws_role` (kept for Teleport's shape) left out. */
function matchable(allow: unknown): unknown {
  if (!Array.isArray(allow)) return allow;
  return allow.map((r: unknown) => {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return r;
    const { aws_role: _role, ...rest } = r as Record<string, unknown>;
    return rest;
  });
}

/** `spec.aws_iid_ttl` in ms (default 5m), named on failure. */
function iidTtlMs(spec: Readonly<Record<string, unknown>>): number {
  const v = spec.aws_iid_ttl ?? DEFAULT_IID_TTL;
  const ms = typeof v === 'string' ? parseDuration(v) : undefined;
  if (ms === undefined || ms <= 0)
    throw new MwiError('BAD_REQUEST', 'expected a duration above 0, such as 5m', { field: 'spec.aws_iid_ttl' });
  return ms;
}

/** mwi.yaml `ec2` as the server half uses it. */
export interface Ec2Config {
  /** AWS's RSA-2048 certificate for documents of `region`. A plain function. */
  certificate: (region: string) => X509Certificate | undefined;
}

type Ec2Options = { region_certificates?: Record<string, string> | undefined };

/**
 * mwi.yaml `ec2`: `region_certificates` maps a region to a PEM file holding the certificate its
 * documents are verified with, adding a region AWS opened after this release or replacing a
 * built-in one (tests put their own CA there).
 */
export const ec2Section: ServerSection<Ec2Options, Ec2Config> = {
  key: 'ec2',
  schema: z
    .object({
      region_certificates: z
        .record(z.string().regex(REGION, 'expected an AWS region such as us-east-1'), z.string().min(1))
        .optional(),
    })
    .strict()
    .default({}),
  build(o) {
    const certs = new Map<string, X509Certificate>();
    for (const [region, body] of Object.entries(AWS_RSA2048_CERTIFICATES))
      certs.set(region, new X509Certificate(`-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`));
    for (const [region, path] of Object.entries(o.region_certificates ?? {})) {
      const field = `ec2.region_certificates.${region}`;
      let pem: string;
      try {
        pem = readFileSync(path, 'utf8');
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `cannot read ${path}: ${ioReason(cause)}`, { field, cause });
      }
      try {
        certs.set(region, new X509Certificate(pem));
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `${path} holds no PEM certificate`, { field, cause });
      }
    }
    return { certificate: (region) => certs.get(region) };
  },
};

/** What the rules can name, from the verified identity. */
function claimsOf(id: InstanceIdentity): Record<string, unknown> {
  return {
    aws_account: id.accountId,
    aws_region: id.region,
    aws_instance_id: id.instanceId,
    pending_time: new Date(id.pendingTime).toISOString(),
  };
}

/** Why the document's age refuses it, if it does: older than the token's TTL, or from the future. */
function staleness(id: InstanceIdentity, ttlMs: number, now: number): string | undefined {
  const age = now - id.pendingTime;
  if (age > ttlMs)
    return (
      `the document is from ${new Date(id.pendingTime).toISOString()}, older than aws_iid_ttl ` + formatDuration(ttlMs)
    );
  if (age < -FUTURE_MS) return `the document's pendingTime ${new Date(id.pendingTime).toISOString()} is in the future`;
  return undefined;
}

/** `tctl tokens test`: the document's checks and the rules, nothing written. */
async function explain(
  cfg: Ec2Config,
  token: JoinTokenView,
  input: ExplainInput,
  now: number,
): Promise<JoinExplanation> {
  const rulesList = matchable(token.spec.allow);
  if ('recordedClaims' in input) {
    const rules = explainAllow(rulesList, input.recordedClaims, EC2_POLICY);
    const detail = `the signed document of the join refused at ${input.recordedAt} (its age was checked then)`;
    return {
      checks: [{ check: 'recorded claims', ok: true, detail }],
      rules,
      claims: input.recordedClaims,
      wouldJoin: rules.some((r) => r.ok),
    };
  }
  const checks: ExplainCheck[] = [];
  let id: InstanceIdentity;
  try {
    id = await verifyDocument(documentBytes(input.idToken.trim()), cfg.certificate);
  } catch (err) {
    const why = err instanceof JoinRefusal ? (err.detail ?? err.message) : String(err);
    return { checks: [{ check: 'signature', ok: false, detail: why }], rules: [], wouldJoin: false };
  }
  checks.push({ check: 'signature', ok: true, detail: `by AWS's RSA-2048 certificate of ${id.region}` });
  const stale = staleness(id, iidTtlMs(token.spec), now);
  checks.push({ check: 'age', ok: !stale, detail: stale ?? `pendingTime ${new Date(id.pendingTime).toISOString()}` });
  checks.push({
    check: 'first use',
    ok: null,
    detail:
      'not checked here: a join is refused while an earlier bot instance of this EC2 instance, joined through ' +
      'this token, is valid',
  });
  const claims = claimsOf(id);
  const rules = explainAllow(rulesList, claims, EC2_POLICY);
  return { checks, rules, claims, wouldJoin: !stale && rules.some((r) => r.ok) };
}

/** The server half for one Auth Service process. */
function handler(cfg: Ec2Config): JoinHandler {
  return {
    async verify(ctx) {
      const doc = (ctx.request.payload as { document?: unknown } | undefined)?.document;
      const id = await verifyDocument(documentBytes(doc), cfg.certificate);
      const stale = staleness(id, iidTtlMs(ctx.token.spec), ctx.now);
      if (stale) throw new JoinRefusal(stale);
      const claims = claimsOf(id);
      let rule;
      try {
        rule = checkAllow(matchable(ctx.token.spec.allow), claims, EC2_POLICY);
      } catch (err) {
        // the signed identity, kept with the refusal for `tctl tokens test --from-audit`
        if (err instanceof JoinRefusal) err.claims = claims;
        throw err;
      }
      const data = { aws_account: id.accountId, aws_instance_id: id.instanceId, pending_time: claims.pending_time };
      return { attributes: { ...claims, matched_rule: rule }, ...(await firstUse(ctx, id, data)) };
    },
    explain: (token, input, _cluster, now) => explain(cfg, token, input, now),
  };
}

/** EC2: the instance identity document AWS signs, verified against AWS's region certificate. */
export const ec2Server: ServerJoinMethod = {
  name: 'ec2',
  sections: [ec2Section],
  prepareToken(spec) {
    iidTtlMs(spec);
    const allow = spec.allow;
    const notes: string[] = [];
    if (Array.isArray(allow))
      allow.forEach((r: unknown, i) => {
        const rule = r as Record<string, unknown> | null;
        if (typeof rule !== 'object' || rule === null || rule.aws_role === undefined) return;
        // Teleport bounds a rule by the account its aws_role can see; mwi calls no AWS API
        if (rule.aws_account === undefined)
          throw new MwiError(
            'BAD_REQUEST',
            "a rule with aws_role needs aws_account in mwi: Teleport's Auth Service assumes aws_role to check the " +
              'instance with ec2:DescribeInstances, which bounds the rule to that account; mwi makes no AWS call, ' +
              'so the rule must name the account itself',
            { field: `spec.allow[${i}]` },
          );
        if (typeof rule.aws_role !== 'string')
          throw new MwiError('BAD_REQUEST', 'expected a role ARN', { field: `spec.allow[${i}].aws_role` });
        notes.push(`spec.allow[${i}].aws_role is kept and not used: mwi does not call ec2:DescribeInstances`);
      });
    assertAllowRules(matchable(allow), EC2_POLICY, 'spec.allow');
    return { spec, notes };
  },
  create: (_deps, section) => handler(section(ec2Section)),
};
