import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { MwiError } from '../../errors.js';
import { formatDuration, parseDuration } from '../../util/duration.js';
import { ioReason } from '../../util/io-reason.js';
import { checkAllow, explainAllow, type RuleOutcome } from '../jwt/allow.js';
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
import { awsEc2Api } from './aws-api.js';
import { checkInstanceRunning, ROLE_ARN, roleAccount, type Ec2Api } from './describe.js';
import { documentBytes, verifyDocument, type InstanceIdentity } from './document.js';
import { firstUse } from './first-use.js';
import { DEFAULT_IID_TTL } from './wire.js';

/**
 * `spec.allow` rules of an ec2 token (Teleport's TokenRule): `aws_account` exactly, `aws_regions`
 * a list the document's region must be in. `aws_role` is not matched here: the rule that matches
 * has its role assumed to check the instance with ec2:DescribeInstances (describe.ts), and a rule
 * naming only `aws_role` is bounded to the role's account (see `matchable`).
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

/**
 * The rules as matched: `aws_role` left out, and a rule without `aws_account` bounded to its
 * role's account (Teleport bounds it the same way, through what DescribeInstances can see there).
 */
function matchable(allow: unknown): unknown {
  if (!Array.isArray(allow)) return allow;
  return allow.map((r: unknown) => {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return r;
    const { aws_role: role, ...rest } = r as Record<string, unknown>;
    const account = role !== undefined && rest.aws_account === undefined ? roleAccount(role) : undefined;
    return account ? { aws_account: account, ...rest } : rest;
  });
}

/** The `aws_role` of the stored rule the matched one came from, if it names one. */
function roleOf(allow: unknown, matched: unknown, rules: unknown): unknown {
  const i = Array.isArray(rules) ? rules.indexOf(matched) : -1;
  const rule = Array.isArray(allow) ? (allow[i] as Record<string, unknown> | undefined) : undefined;
  return rule?.aws_role;
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
  /** STS and EC2, for the rules that name `aws_role`. */
  api: Ec2Api;
}

type Ec2Options = {
  region_certificates?: Record<string, string> | undefined;
  forward_url?: string | undefined;
  forward_ca_path?: string | undefined;
};

const forwardUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' && u.pathname === '/' && !u.search && !u.username && !u.password;
  } catch {
    return false;
  }
}, 'expected https://HOST[:PORT] without a path (https only, loopback included)');

/** Reads a file mwi.yaml names, or stops `mwi start` naming the field. */
function readConfigFile(path: string, field: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot read ${path}: ${ioReason(cause)}`, { field, cause });
  }
}

/**
 * mwi.yaml `ec2`: `region_certificates` maps a region to a PEM file holding the certificate its
 * documents are verified with, adding a region AWS opened after this release or replacing a
 * built-in one (tests put their own CA there). For tests, `forward_url` (https) is where the STS
 * and EC2 calls of the `aws_role` check go instead of AWS's regional hosts (they still name and
 * sign for those hosts), trusting `forward_ca_path` if given.
 */
export const ec2Section: ServerSection<Ec2Options, Ec2Config> = {
  key: 'ec2',
  schema: z
    .object({
      region_certificates: z
        .record(z.string().regex(REGION, 'expected an AWS region such as us-east-1'), z.string().min(1))
        .optional(),
      forward_url: forwardUrl.optional(),
      forward_ca_path: z.string().min(1).optional(),
    })
    .strict()
    .refine((o) => !o.forward_ca_path || o.forward_url, { message: 'only with forward_url', path: ['forward_ca_path'] })
    .default({}),
  build(o) {
    const certs = new Map<string, X509Certificate>();
    for (const [region, body] of Object.entries(AWS_RSA2048_CERTIFICATES))
      certs.set(region, new X509Certificate(`-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`));
    for (const [region, path] of Object.entries(o.region_certificates ?? {})) {
      const field = `ec2.region_certificates.${region}`;
      const pem = readConfigFile(path, field);
      try {
        certs.set(region, new X509Certificate(pem));
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `${path} holds no PEM certificate`, { field, cause });
      }
    }
    const ca = o.forward_ca_path ? readConfigFile(o.forward_ca_path, 'ec2.forward_ca_path') : undefined;
    const api = awsEc2Api({ forward: o.forward_url ? { url: new URL(o.forward_url), ca } : undefined });
    return { certificate: (region) => certs.get(region), api };
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
      checks: [{ check: 'recorded claims', ok: true, detail }, ...runningCheck(token, rulesList, rules)],
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
  checks.push(...runningCheck(token, rulesList, rules));
  return { checks, rules, claims, wouldJoin: !stale && rules.some((r) => r.ok) };
}

/** The DescribeInstances check, named (not made) when the first matching rule has an aws_role. */
function runningCheck(token: JoinTokenView, rulesList: unknown, rules: RuleOutcome[]): ExplainCheck[] {
  const first = rules.find((r) => r.ok);
  const role =
    first && Array.isArray(rulesList) ? roleOf(token.spec.allow, rulesList[first.index], rulesList) : undefined;
  if (role === undefined) return [];
  const detail =
    `not checked here: a join assumes ${JSON.stringify(role)} and asks EC2 DescribeInstances whether the ` +
    'instance is running';
  return [{ check: 'instance running', ok: null, detail }];
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
      const rules = matchable(ctx.token.spec.allow);
      let rule;
      try {
        rule = checkAllow(rules, claims, EC2_POLICY);
        // the first rule that matches decides, as in Teleport: its aws_role, if any, must see the instance running
        const role = roleOf(ctx.token.spec.allow, rule, rules);
        // a document already held through this token is refused before AWS is asked anything: a
        // replayed copy must not make the Auth Service call the account's EC2 API each time
        const data = { aws_account: id.accountId, aws_instance_id: id.instanceId, pending_time: claims.pending_time };
        const first = await firstUse(ctx, id, data);
        // a stored rule's role that is not a string (stored before it was checked) is refused there
        if (role !== undefined) await checkInstanceRunning(cfg.api, typeof role === 'string' ? role : '', id);
        if (typeof role === 'string') rule = { ...rule, aws_role: role };
        return { attributes: { ...claims, matched_rule: rule }, ...first };
      } catch (err) {
        // the signed identity, kept with the refusal for `tctl tokens test --from-audit`
        if (err instanceof JoinRefusal) err.claims = claims;
        throw err;
      }
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
    if (Array.isArray(allow))
      allow.forEach((r: unknown, i) => {
        const rule = r as Record<string, unknown> | null;
        if (typeof rule !== 'object' || rule === null || rule.aws_role === undefined) return;
        const field = `spec.allow[${i}].aws_role`;
        const m = typeof rule.aws_role === 'string' ? ROLE_ARN.exec(rule.aws_role) : null;
        if (!m)
          throw new MwiError('BAD_REQUEST', 'expected an IAM role ARN such as arn:aws:iam::123456789012:role/NAME', {
            field,
          });
        if (rule.aws_account !== undefined && rule.aws_account !== m[2])
          throw new MwiError(
            'BAD_REQUEST',
            `the role is in account ${m[2]}, not the rule's aws_account ${JSON.stringify(rule.aws_account)}: ` +
              'DescribeInstances with it would not see the instance (Teleport takes such a rule and refuses every ' +
              'join through it)',
            { field },
          );
      });
    assertAllowRules(matchable(allow), EC2_POLICY, 'spec.allow');
    return { spec };
  },
  create: (_deps, section) => handler(section(ec2Section)),
};
