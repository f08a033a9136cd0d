import { readFileSync } from 'node:fs';
import type { TestTokenReply } from '../../api/admin.js';
import { MwiError } from '../../errors.js';
import { usageError } from '../common.js';
import { print, safeTable, toJson } from './output.js';
import { need, type Command } from './shared.js';

/** The identity token from `--id-token FILE` (`-` reads stdin): a file, never argv, which ps shows. */
function readIdToken(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8').trim();
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot read ${file}: ${(cause as Error).message}`, {
      field: '--id-token',
      cause,
    });
  }
}

const mark = (ok: boolean | null) => (ok === null ? '-' : ok ? 'ok' : 'FAIL');
const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v));

/** The report as a person reads it: each check, then each rule field by field, then the outcome. */
function report(r: TestTokenReply): string {
  let out = `token ${show(r.token)} (${r.join_method}, bot ${show(r.bot_name)})\n\nChecks:\n`;
  out += safeTable(
    ['', 'Check', 'Detail'],
    r.checks.map((c) => [mark(c.ok), c.check, c.detail]),
  );
  if (r.rules.length) {
    out += '\nAllow rules (any one must match; every field of a rule must):\n';
    for (const rule of r.rules) {
      const problem = rule.problem ? ` (${rule.problem})` : '';
      out += `rule ${rule.index}: ${rule.ok ? 'MATCHES' : 'does not match'}${problem}\n`;
      if (rule.fields.length)
        out += `${safeTable(
          ['', 'Field', 'Rule wants', 'Claim', 'Token has'],
          rule.fields.map((f) => [mark(f.ok), f.field, show(f.want), f.claim, show(f.got)]),
        )
          .trimEnd()
          .replace(/^/gm, '  ')}\n`;
    }
  }
  const failed = r.checks.find((c) => c.ok === false);
  const why = failed ? `the ${failed.check} check failed` : 'no allow rule matches';
  out += r.would_join
    ? `\nResult: this identity token would join as bot ${show(r.bot_name)} (if not used before)\n`
    : `\nResult: a join with this identity token would be REFUSED: ${why}\n`;
  return out;
}

/**
 * `tctl tokens test NAME --id-token FILE | --from-audit UID`: the token's join checks, each shown,
 * on a platform's identity token or on the claims a refused join recorded. Creates nothing, spends
 * nothing. Exit 0 when the join would pass, 1 when it would be refused.
 */
export async function tokensTest({ admin, positionals, values, format }: Command): Promise<number> {
  const name = need(positionals[0], 'NAME');
  const file = values['id-token'];
  const uid = values['from-audit'];
  if ((file === undefined) === (uid === undefined))
    throw usageError('give the identity token to test (--id-token FILE) or a refused join (--from-audit UID)');
  const r = await admin.testToken(name, file !== undefined ? { id_token: readIdToken(file) } : { audit_uid: uid });
  print(format === 'json' ? `${toJson(r)}\n` : report(r));
  return r.would_join ? 0 : 1;
}

/** `tctl audit ls --failures`: refusals with their reasons and uids (for tokens test --from-audit). */
export function failuresTable(events: Awaited<ReturnType<Command['admin']['audit']>>): string {
  return safeTable(
    ['Time', 'Event', 'Bot', 'Token', 'UID', 'Reason'],
    events.map((e) => [e.time ?? '', e.event, e.bot_name ?? '', e.token_id ?? '', e.uid ?? '', e.reason ?? '']),
  );
}
