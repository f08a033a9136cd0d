import type { AdminClient } from '../../api/admin-client.js';
import type { Format } from './format.js';
import { print, safeTable, toJson } from './output.js';
import type { Flags } from './shared.js';

/** `tctl audit ls [--limit N] [--type EVENT]`: recent events, newest first; the table names the join token. */
export async function auditList(admin: AdminClient, values: Flags, format: Format): Promise<void> {
  const events = await admin.audit({
    limit: Number(values.limit ?? 50),
    ...(values.type ? { type: values.type } : {}),
  });
  if (format === 'json') return void print(`${toJson(events)}\n`);
  print(
    safeTable(
      ['Time', 'Event', 'OK', 'Bot', 'Instance', 'Token', 'Detail'],
      events.map((e) => {
        const detail = e.reason ?? e.resource ?? e.join_method ?? '';
        const ok = e.success ? 'yes' : 'NO';
        return [e.time ?? '', e.event, ok, e.bot_name ?? '', e.bot_instance_id ?? '', e.token_id ?? '', detail];
      }),
    ),
  );
}
