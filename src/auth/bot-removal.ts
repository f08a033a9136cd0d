import { MwiError } from '../errors.js';
import { key } from '../storage/backend.js';
import type { AuthContext } from './context.js';
import type { StoredToken } from './tokens.js';

/** Bot instances (or tokens) deleted per write when their bot is removed. */
const BATCH = 1000;

/**
 * Removes a bot, ends its instances and deletes its join tokens. The bot and the first page of
 * its instances go in one conditional write, the rest (a bot can have very many) right after.
 * An instance the removal misses (a join racing it) is still dead: it carries the removed bot's
 * `status.uid`, and a bot added again with the same name gets a new one (instances.ts compares them).
 * Throws NOT_FOUND if there is no such bot.
 */
export async function removeBot(ctx: AuthContext, name: string, user: string): Promise<void> {
  const bk = key('bots', name);
  const prefix = `${key('bot_instances', name)}/`;
  for (let attempt = 0; attempt < 5; attempt++) {
    const bot = await ctx.backend.get(bk);
    if (!bot) throw new MwiError('NOT_FOUND', `bot ${JSON.stringify(name)} not found`);
    const first = await ctx.backend.range(prefix, { limit: BATCH });
    const ok = await ctx.backend.transact([
      { op: 'delete', key: bk, revision: bot.revision },
      ...first.map((i) => ({ op: 'delete' as const, key: i.key, revision: i.revision })),
    ]);
    if (!ok) continue; // the bot or one of those instances changed meanwhile: read again
    let ended = first.length;
    if (first.length === BATCH) {
      let startAfter = first[first.length - 1]!.key;
      for (;;) {
        const page = await ctx.backend.range(prefix, { limit: BATCH, startAfter });
        for (const i of page) if (await ctx.backend.delete(i.key)) ended++;
        if (page.length < BATCH) break;
        startAfter = page[page.length - 1]!.key;
      }
    }
    ctx.audit.emit({
      event: 'resource.deleted',
      success: true,
      resource: `bot/${name}`,
      user,
      bot_name: name,
      instances_ended: ended,
    });
    await removeTokensOf(ctx, name, user);
    return;
  }
  throw new MwiError('COMPARE_FAILED', `bot ${JSON.stringify(name)} or its instances kept changing; try again`);
}

/**
 * Deletes the join tokens of a removed bot: a bot added again with the same name must not be
 * joinable with the old bot's tokens (a bound keypair's key and join state would otherwise
 * recover into it). Tokens are not indexed by bot: this walks them, page by page.
 */
async function removeTokensOf(ctx: AuthContext, botName: string, user: string): Promise<void> {
  const prefix = '/tokens/';
  let startAfter: string | undefined;
  for (;;) {
    const page = await ctx.backend.range(prefix, { limit: BATCH, ...(startAfter ? { startAfter } : {}) });
    for (const item of page) {
      if ((JSON.parse(item.value) as StoredToken).spec.bot_name !== botName) continue;
      if (await ctx.backend.delete(item.key))
        ctx.audit.emit({
          event: 'resource.deleted',
          success: true,
          resource: `token/${item.key.slice(prefix.length)}`,
          user,
        });
    }
    if (page.length < BATCH) return;
    startAfter = page[page.length - 1]!.key;
  }
}
