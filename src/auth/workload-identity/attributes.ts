import type { Bot, BotInstance } from '../../api/resources.js';
import type { WorkloadAttributes } from '../../api/workload-identity.js';

/**
 * Every attribute of a request by its name as rules and templates spell it (Teleport's):
 * `workload.unix.uid`, `workload.kubernetes.labels.app`, `user.name`, `user.bot_name`,
 * `user.bot_instance_id`, `user.labels.KEY`, `user.traits.NAME` (values joined by ","), and
 * `join.METHOD.CLAIM` from what the bot's join verified. Values are strings, as Teleport casts them.
 */
export type AttributeMap = ReadonlyMap<string, string>;

function flatten(into: Map<string, string>, prefix: string, value: unknown, depth = 0): void {
  if (value === undefined || value === null || depth > 6) return;
  if (typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(into, `${prefix}.${k}`, v, depth + 1);
    return;
  }
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) into.set(prefix, value.join(','));
    return;
  }
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    into.set(prefix, String(value));
}

/**
 * The join attributes of an instance: the join method's verified claims under `join.METHOD`.
 * A Kubernetes service account `NS:NAME` is also `join.kubernetes.service_account.namespace`
 * and `.name`, as Teleport names them.
 */
function joinAttributes(into: Map<string, string>, instance: BotInstance | undefined): void {
  const auth = instance?.status.initial_authentication;
  if (!auth?.metadata) return;
  const method = auth.join_method;
  const meta: Record<string, unknown> = { ...auth.metadata };
  const sa = meta.service_account;
  if (method === 'kubernetes' && typeof sa === 'string' && sa.includes(':')) {
    const [namespace, name] = sa.split(':', 2);
    meta.service_account = { namespace, name };
  }
  flatten(into, `join.${method}`, meta);
}

/** All attributes of a request, from the bot, its instance and what tbot attested. */
export function attributesOf(
  bot: Bot,
  instanceId: string,
  instance: BotInstance | undefined,
  workload: WorkloadAttributes | undefined,
): AttributeMap {
  const m = new Map<string, string>();
  flatten(m, 'workload', workload ?? {});
  const name = bot.metadata.name;
  m.set('user.name', `bot-${name}`);
  m.set('user.is_bot', 'true');
  m.set('user.bot_name', name);
  m.set('user.bot_instance_id', instanceId);
  flatten(m, 'user.labels', bot.metadata.labels ?? {});
  for (const t of bot.spec.traits) m.set(`user.traits.${t.name}`, t.values.join(','));
  joinAttributes(m, instance);
  return m;
}
