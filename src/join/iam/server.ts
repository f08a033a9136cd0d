import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { MwiError } from '../../errors.js';
import { ioReason } from '../../util/io-reason.js';
import { checkAllow, explainAllow } from '../jwt/allow.js';
import { assertAllowRules, type AllowPolicy } from '../jwt/rules.js';
import { storedRules } from '../placement.js';
import {
  JoinRefusal,
  type ExplainInput,
  type JoinExplanation,
  type JoinHandler,
  type JoinTokenView,
  type ServerJoinMethod,
  type ServerSection,
} from '../types.js';
import { DEFAULT_STS_HOSTS, isFipsHost } from './hosts.js';
import { checkStsRequest, MAX_REQUEST_BYTES, parseStsRequest } from './request.js';
import { httpsSender, readIdentity, type StsSender } from './sts.js';
import type { IamJoinPayload } from './wire.js';

/**
 * `spec.allow` rules of an iam token (Teleport's TokenRule): `aws_account` exactly, `aws_arn` as a
 * glob (`*`, `?`, anchored) on the ARN STS returns; each rule names at least one of them.
 */
export const IAM_POLICY: AllowPolicy = {
  fields: {
    aws_account: { claim: 'aws_account', format: { pattern: /^\d{12}$/, hint: 'expected a 12-digit AWS account id' } },
    aws_arn: { claim: 'aws_arn', match: 'glob' },
  },
  requireOneOf: [['aws_account', 'aws_arn']],
};

/** mwi.yaml `iam`, as the server half uses it. */
export interface IamConfig {
  /** Whether a request may name this STS host. */
  allowedHost: (host: string) => boolean;
  send: StsSender;
}

const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;
const forwardUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
    return (u.protocol === 'https:' || (u.protocol === 'http:' && loopback)) && u.pathname === '/' && !u.search;
  } catch {
    return false;
  }
}, 'expected https://HOST[:PORT] (http:// only for loopback), without a path');

/** The options of mwi.yaml `iam` as written. */
type IamOptions = { sts_hosts?: string[] | undefined; fips: boolean; forward_url?: string; forward_ca_path?: string };

/**
 * mwi.yaml `iam`: which STS hosts a request may name (`sts_hosts`, default AWS's; `fips: true`
 * keeps only the FIPS endpoints among them) and, for tests, `forward_url`: where requests are
 * sent instead of their host (the host check stays on).
 */
export const iamSection: ServerSection<IamOptions, IamConfig> = {
  key: 'iam',
  schema: z
    .object({
      sts_hosts: z.array(z.string().regex(HOST, 'expected a host name (no scheme, no port)')).min(1).optional(),
      fips: z.boolean().default(false),
      forward_url: forwardUrl.optional(),
      forward_ca_path: z.string().min(1).optional(),
    })
    .strict()
    .refine((o) => !o.fips || (o.sts_hosts ?? DEFAULT_STS_HOSTS).some(isFipsHost), {
      message: 'fips: true, but none of sts_hosts is a FIPS endpoint (sts-fips.REGION.amazonaws.com)',
      path: ['fips'],
    })
    .refine((o) => !o.forward_ca_path || o.forward_url, {
      message: 'only with forward_url',
      path: ['forward_ca_path'],
    })
    .default({}),
  build(o) {
    const hosts = new Set(o.sts_hosts ?? DEFAULT_STS_HOSTS);
    let ca: string | undefined;
    if (o.forward_ca_path) {
      try {
        ca = readFileSync(o.forward_ca_path, 'utf8');
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `cannot read ${o.forward_ca_path}: ${ioReason(cause)}`, {
          field: 'iam.forward_ca_path',
          cause,
        });
      }
    }
    return {
      allowedHost: (host) => hosts.has(host) && (!o.fips || isFipsHost(host)),
      send: httpsSender(o.forward_url ? { url: new URL(o.forward_url), ca } : undefined),
    };
  },
};

/** Longest sts_request accepted, base64. */
const MAX_PAYLOAD = Math.ceil(MAX_REQUEST_BYTES / 3) * 4;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The signed request of the payload, as bytes (strict base64). */
function requestBytes(payload: unknown): Buffer {
  const text = (payload as Partial<IamJoinPayload> | undefined)?.sts_request;
  if (typeof text !== 'string' || text.length > MAX_PAYLOAD || !BASE64.test(text))
    throw new JoinRefusal('no sts_request (base64) in the payload');
  return Buffer.from(text, 'base64');
}

/** The claims the rules name, from STS's answer. */
export interface IamClaims extends Record<string, unknown> {
  aws_account: string;
  aws_arn: string;
  aws_user_id: string;
}

/** `tctl tokens test`: an iam join's proof answers one challenge, so only a refused join's claims are tested. */
function explain(token: JoinTokenView, input: ExplainInput): JoinExplanation {
  if (!('recordedClaims' in input))
    return {
      checks: [
        {
          check: 'signed request',
          ok: false,
          detail:
            'an iam join presents an sts:GetCallerIdentity request signed for one challenge of the Auth Service, ' +
            'not a reusable identity token: test the claims of a refused join with --from-audit UID',
        },
      ],
      rules: [],
      wouldJoin: false,
    };
  const rules = explainAllow(storedRules(token.spec, 'iam'), input.recordedClaims, IAM_POLICY);
  return {
    checks: [
      {
        check: 'recorded claims',
        ok: true,
        detail: `what STS answered for the join refused at ${input.recordedAt}`,
      },
    ],
    rules,
    claims: input.recordedClaims,
    wouldJoin: rules.some((r) => r.ok),
  };
}

/** The server half for one Auth Service process. */
function handler(cfg: IamConfig): JoinHandler {
  return {
    async challenge() {
      const challenge = randomBytes(32).toString('base64url');
      return { send: { challenge }, store: { challenge } };
    },

    async verify(ctx) {
      const challenge = ctx.challenge?.challenge;
      if (typeof challenge !== 'string') throw new JoinRefusal('no valid challenge for this join');
      // every check before STS answers is refused generically (the caller learns nothing of the token)
      const req = parseStsRequest(requestBytes(ctx.request.payload));
      const host = checkStsRequest(req, challenge, cfg.allowedHost);
      let answer;
      try {
        answer = await cfg.send(host, req);
      } catch (err) {
        throw new JoinRefusal(`STS at ${host} not reached: ${err instanceof Error ? err.message : String(err)}`);
      }
      const id = readIdentity(answer);
      const claims: IamClaims = { aws_account: id.account, aws_arn: id.arn, aws_user_id: id.userId };
      let rule;
      try {
        rule = checkAllow(storedRules(ctx.token.spec, 'iam'), claims, IAM_POLICY);
      } catch (err) {
        // what AWS said, kept with the refusal for `tctl tokens test --from-audit`
        if (err instanceof JoinRefusal) err.claims = claims;
        throw err;
      }
      // the challenge is spent by the write that records this join: a replayed request is refused
      return { attributes: { ...claims, sts_host: host, matched_rule: rule } };
    },

    explain: async (token, input) => explain(token, input),
  };
}

/** AWS IAM: a signed sts:GetCallerIdentity request, sent to STS by the Auth Service. */
export const iamServer: ServerJoinMethod = {
  name: 'iam',
  sections: [iamSection],
  prepareToken(spec) {
    assertAllowRules(spec.allow, IAM_POLICY, 'spec.allow');
    return { spec };
  },
  create: (_deps, section) => handler(section(iamSection)),
};
