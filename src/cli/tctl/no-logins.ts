import type { AdminClient } from '../../api/admin-client.js';
import type { Bot } from '../../api/resources.js';
import { warn } from './output.js';

/** A role login: itself, or `{{internal.NAME}}` expanded from the bot's traits (as the Auth Service does). */
function expand(value: string, traits: Bot['spec']['traits']): string[] {
  const m = /^\{\{\s*internal\.([a-zA-Z0-9_]+)\s*\}\}$/.exec(value);
  if (!m) return value.includes('{{') ? [] : [value];
  return traits.find((t) => t.name === m[1])?.values ?? [];
}

/**
 * After `tctl bots add/update`: one `warning:` line on stderr when the bot's roles, with its
 * traits (--logins fills `{{internal.logins}}`), grant no SSH login. Such a bot works, and its
 * SSH certificates log in nowhere (their one principal is a placeholder: docs/security.md), which
 * nothing else would tell the operator. A role that cannot be read counts as granting nothing.
 * No warning for a bot whose roles grant it something else to do (workload identities, database
 * users, host certificates): a bot for SVIDs needs no login.
 */
export async function warnIfNoLogins(
  admin: AdminClient,
  name: string,
  roles: readonly string[],
  traits: Bot['spec']['traits'],
): Promise<void> {
  const granted = new Set<string>();
  const denied = new Set<string>();
  let otherUse = false;
  for (const r of roles) {
    const role = await admin.get('role', r).catch(() => undefined);
    const allow = role?.spec.allow as
      { workload_identity_labels?: object; db_users?: string[]; rules?: Array<{ resources?: string[] }> } | undefined;
    otherUse ||=
      Object.keys(allow?.workload_identity_labels ?? {}).length > 0 ||
      (allow?.db_users?.length ?? 0) > 0 ||
      (allow?.rules ?? []).some((rule) => rule.resources?.some((res) => res === 'host_cert' || res === '*'));
    for (const l of role?.spec.allow.logins ?? []) for (const v of expand(l, traits)) granted.add(v);
    for (const l of role?.spec.deny.logins ?? []) for (const v of expand(l, traits)) denied.add(v);
  }
  if (otherUse || [...granted].some((l) => !denied.has(l))) return;
  warn(
    `warning: the roles of bot "${name}" (${roles.join(', ')}) grant no SSH logins and --logins gives none: ` +
      'its SSH certificates can log in nowhere; add logins to a role (allow.logins), or give the bot logins ' +
      `for a role that uses {{internal.logins}} (tctl bots update ${name} --add-logins LOGIN)\n`,
  );
}
