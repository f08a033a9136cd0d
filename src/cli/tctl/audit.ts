import { AUDIT_EVENT_TYPES } from '../../api/admin.js';
import type { AdminClient } from '../../api/admin-client.js';
import { MwiError } from '../../errors.js';
import { didYouMean } from '../help/suggest.js';
import type { Format } from './format.js';
import { print, safeTable, toJson } from './output.js';
import { failuresTable } from './tokens-test.js';
import type { Flags } from './shared.js';

/**
 * `tctl audit ls [--limit N] [--type EVENT] [--failures]`: recent events, newest first; the table
 * names the join token and, for an administrator's event, who made it. `--failures`: refusals,
 * with their uids (for tokens test --from-audit).
 */
export async function auditList(admin: AdminClient, values: Flags, format: Format): Promise<void> {
  // an unknown name would match nothing and look like a quiet log: say so instead
  const type = values.type;
  if (type !== undefined && !(AUDIT_EVENT_TYPES as readonly string[]).includes(type))
    throw new MwiError(
      'BAD_CONFIG',
      `unknown event type ${JSON.stringify(type)}${didYouMean(type, AUDIT_EVENT_TYPES)} ` +
        `(one of: ${AUDIT_EVENT_TYPES.join(', ')})`,
      { field: '--type' },
    );
  const events = await admin.audit({
    limit: Number(values.limit ?? 50),
    ...(values.type ? { type: values.type } : {}),
    ...(values.failures ? { failures: true } : {}),
  });
  if (format === 'json') return void print(`${toJson(events)}\n`);
  if (values.failures) return void print(failuresTable(events));
  print(
    safeTable(
      ['Time', 'Event', 'OK', 'Bot', 'Instance', 'Token', 'Detail'],
      events.map((e) => {
        // the actor of an administrator's event (an operator's name for an operator identity)
        const by = typeof e.user === 'string' ? ` (by ${e.user})` : '';
        const route = typeof e.route === 'string' ? e.route : undefined;
        const detail = `${e.reason ?? e.resource ?? route ?? e.join_method ?? ''}${by}`;
        const ok = e.success ? 'yes' : 'NO';
        return [e.time ?? '', e.event, ok, e.bot_name ?? '', e.bot_instance_id ?? '', e.token_id ?? '', detail];
      }),
    ),
  );
}
