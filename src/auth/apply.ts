import { randomUUID } from 'node:crypto';
import { TOKEN_ID_FORM, type CreatedReply } from '../api/admin.js';
import { checkResource, type Bot, type Kind, type Lock, type Token } from '../api/resources.js';
import { sha256Hex } from '../crypto/keys.js';
import { isMwiError, MwiError, type ErrorCode } from '../errors.js';
import { joinMethodInfo, unknownJoinMethod } from '../join/catalog.js';
import { prepareTokenSpec } from '../join/token-spec.js';
import { key, type Item, type TxOp } from '../storage/backend.js';
import type { AuthContext } from './context.js';
import { legacyTokenId, tokenId, tokenKey, type StoredToken } from './tokens.js';

// Writing roles, bots, tokens and locks (tctl create, tctl edit, bots add, tokens add): every
// resource of one request is checked and planned first, then written in one storage transaction
// whose conditions are the revisions the plan read. A refused document writes nothing; a write
// that changed something the plan read makes the transaction fail, and the plan is made again.

/** One resource of a request, as the admin API got it. */
export interface ApplyItem {
  resource: unknown;
  /**
   * The storage revision the resource was read at (tctl edit): it is written only if that is
   * still the stored revision, else refused with COMPARE_FAILED. Implies replacing.
   */
  expectedRevision?: string | undefined;
}

/** How a refusal names its document: the file's documents (tctl create) or none (one resource by API). */
export type Labels = 'documents' | 'none';

/** Plans made again after a transaction lost a race, before the request gives up with COMPARE_FAILED. */
const MAX_ATTEMPTS = 5;

/** What one resource will write. */
interface Planned {
  kind: Kind;
  /** As replies and audit events name it: a token named by its secret goes by its id. */
  name: string;
  key: string;
  text: string;
  /** The stored item it replaces (its revision is the write's condition); absent: a new one. */
  prev: Item | undefined;
  shownOnce?: Record<string, string> | undefined;
  notes: string[];
  /** Extra audit fields (a lock: what it stops and why, for the log line and the audit). */
  audit?: Record<string, unknown>;
}

/** A lock's one target as `field:value`, as tctl locks ls shows it. */
function lockTargetText(t: Lock['spec']['target']): string {
  const [field, value] = Object.entries(t).find(([, v]) => v) ?? ['', ''];
  return `${field}:${String(value)}`;
}

/** What the earlier documents of the same request write: later ones may refer to them. */
interface Batch {
  roles: Set<string>;
  bots: Set<string>;
  /** storage key -> the document (1-based) that writes it */
  keys: Map<string, number>;
}

/** Refuses a join method the catalog does not have, naming spec.join_method. */
export function checkJoinMethod(method: string): void {
  if (!joinMethodInfo(method)) {
    throw new MwiError('BAD_REQUEST', unknownJoinMethod(method), { field: 'spec.join_method' });
  }
}

/** Why a token named by an id (`h-<16 hex>`) that is not stored cannot be created. */
const BY_ID_NOT_FOUND = (id: string): string =>
  `token ${JSON.stringify(id)} not found: a name of the form h-<16 hex> is the id tctl get prints for a token ` +
  'named by its secret (mwi keeps only a hash of the secret, where Teleport prints the secret itself), so it ' +
  'can only replace that stored token. A join secret of that form is refused, so that a file is never read ' +
  'two ways; make a new token with tctl tokens add';

/**
 * Turns a validated token into its stored form: a `token`-method name becomes a hash, and the
 * method normalizes its spec (bound_keypair hashes or generates its registration secret, a
 * platform method moves its rules to Teleport's place). Status is the server's: never taken from
 * the input, kept from `previous` on replace. A `token`-method token named by its id (`tctl get`
 * prints no secret) replaces the stored one it names, keeping its secret.
 */
function storedToken(
  t: Token,
  now: number,
  secretId: string,
  previous?: StoredToken,
): { id: string; stored: StoredToken; shownOnce?: Record<string, string>; notes: string[] } {
  checkJoinMethod(t.spec.join_method);
  const name = t.metadata.name;
  const { spec, shownOnce, notes } = prepareTokenSpec(t.spec, now, previous?.spec);
  const { status: _server, ...given } = t;
  const base: StoredToken = {
    ...given,
    spec: spec as Token['spec'],
    ...(previous?.status ? { status: previous.status } : {}),
  };
  if (joinMethodInfo(t.spec.join_method)!.secretName) {
    if (TOKEN_ID_FORM.test(name)) return { id: name, stored: { ...base, secret_hash: previous!.secret_hash! }, notes };
    if (name.length < 16)
      throw new MwiError('BAD_REQUEST', 'a join secret must be at least 16 characters', { field: 'metadata.name' });
    const stored = { ...base, metadata: { ...t.metadata, name: secretId }, secret_hash: sha256Hex(name) };
    return { id: secretId, stored, notes };
  }
  if (TOKEN_ID_FORM.test(name))
    throw new MwiError('BAD_REQUEST', 'names of the form h-<16 hex> are reserved for hashed tokens', {
      field: 'metadata.name',
    });
  return { id: name, stored: base, ...(shownOnce ? { shownOnce } : {}), notes };
}

/** Plans resource `n` (1-based) of a request: everything is checked and read, nothing written. */
async function plan(
  ctx: AuthContext,
  item: ApplyItem,
  upsert: boolean,
  user: string,
  batch: Batch,
  n: number,
): Promise<Planned> {
  const checked = checkResource(item.resource);
  const res = checked.resource;
  let notes = checked.notes;
  let name = res.metadata.name;
  let k: string;
  let value: unknown = res;
  let shownOnce: Record<string, string> | undefined;
  let prev: Item | undefined;
  if (res.kind === 'token') {
    // Teleport's order is the token first, then `tctl bots add NAME --token TOKEN`: a token may
    // name a bot that does not exist yet (a join with it is refused until the bot exists)
    checkJoinMethod(res.spec.join_method);
    const secretName = joinMethodInfo(res.spec.join_method)!.secretName;
    if (!batch.bots.has(res.spec.bot_name) && !(await ctx.bots.fresh(res.spec.bot_name))) {
      // never the name of a token whose name is its secret: notes are printed
      const bind = secretName ? '' : ` --token ${name}`;
      notes = [
        ...notes,
        `bot ${JSON.stringify(res.spec.bot_name)} does not exist yet: joins with this token are refused until ` +
          `it does (tctl bots add ${res.spec.bot_name} --roles ...${bind})`,
      ];
    }
    // a name of the id form is always an id (secrets of that form are refused): never two readings
    const byId = secretName && TOKEN_ID_FORM.test(name);
    // a secret names its token by a keyed id (or, for a token made before ids were keyed, the old one)
    let id = byId ? name : tokenId(name, res.spec.join_method, ctx.cas.challengeMac);
    prev = await ctx.backend.get(tokenKey(id));
    if (!prev && secretName && !byId) {
      const legacy = await ctx.backend.get(tokenKey(legacyTokenId(name)));
      if (legacy) [id, prev] = [legacyTokenId(name), legacy];
    }
    k = tokenKey(id);
    if (byId && !prev) throw new MwiError('NOT_FOUND', BY_ID_NOT_FOUND(name), { field: 'metadata.name' });
    const previous = prev && (upsert || byId) ? (JSON.parse(prev.value) as StoredToken) : undefined;
    const prepared = storedToken(res, ctx.now(), id, previous);
    value = prepared.stored;
    name = prepared.id;
    shownOnce = prepared.shownOnce;
    notes = [...notes, ...prepared.notes];
  } else if (res.kind === 'bot') {
    for (const r of res.spec.roles)
      if (!batch.roles.has(r) && !(await ctx.roles.fresh(r)))
        throw new MwiError('NOT_FOUND', `role ${JSON.stringify(r)} does not exist`, { field: 'spec.roles' });
    k = key('bots', name);
    prev = await ctx.backend.get(k);
    // the uid is the server's: a new bot gets a new one, a replaced bot keeps its own (a bot
    // stored before uids existed keeps none, so its instances stay valid)
    const uid = prev ? (JSON.parse(prev.value) as Bot).status?.uid : randomUUID();
    const { status: _ignored, ...rest } = res;
    value = { ...rest, ...(uid ? { status: { uid } } : {}) };
  } else if (res.kind === 'lock') {
    // who and when: kept when given (a lock re-applied from tctl get stays as it was), as in Teleport
    const { created, ...spec } = res.spec;
    const createdAt = spec.created_at ?? created ?? new Date(ctx.now()).toISOString();
    const lock: Lock = { ...res, spec: { ...spec, created_by: spec.created_by ?? user, created_at: createdAt } };
    value = lock;
    k = key('locks', name);
    prev = await ctx.backend.get(k);
  } else {
    k = key(res.kind === 'workload_identity' ? 'workload_identities' : 'roles', name);
    prev = await ctx.backend.get(k);
  }
  const what = `${res.kind} ${JSON.stringify(name)}`;
  const twin = batch.keys.get(k);
  if (twin !== undefined)
    throw new MwiError('BAD_REQUEST', `${what} is also document ${twin}: give each resource once`);
  if (item.expectedRevision !== undefined) {
    if (!prev) throw new MwiError('COMPARE_FAILED', `${what} was removed by someone else since it was read`);
    if (String(prev.revision) !== item.expectedRevision)
      throw new MwiError('COMPARE_FAILED', `${what} was changed by someone else since it was read`);
  } else if (prev && !upsert) {
    throw new MwiError('ALREADY_EXISTS', `${what} already exists (use --force to replace it)`);
  }
  batch.keys.set(k, n);
  if (res.kind === 'role') batch.roles.add(name);
  if (res.kind === 'bot') batch.bots.add(name);
  const audit =
    res.kind === 'lock' ? { target: lockTargetText(res.spec.target), message: res.spec.message || undefined } : {};
  return { kind: res.kind, name, key: k, text: JSON.stringify(value), prev, shownOnce, notes, audit };
}

/** Kinds a refusal may name by metadata.name: a token's is hashed first, any other kind's is left out. */
const NAMED_KINDS: ReadonlySet<string> = new Set(['role', 'bot', 'lock', 'token', 'workload_identity']);

/**
 * How a refusal names document `n` of `total`: `document 3 (token "x")`, or `role "x"` alone for
 * a file of one (nothing when that has no kind or name). A token whose name may be its secret goes
 * by its id, and a document of an unknown kind by its number alone: errors are printed and logged.
 */
function documentLabel(input: unknown, n: number, total: number, macKey: Buffer): string | undefined {
  const r = (typeof input === 'object' && input !== null ? input : {}) as {
    kind?: unknown;
    metadata?: { name?: unknown };
    spec?: { join_method?: unknown };
  };
  let name = typeof r.metadata?.name === 'string' ? r.metadata.name : undefined;
  // a misspelled kind (Token, tokens, provision_token) may be a token named by its secret
  if (typeof r.kind !== 'string' || !NAMED_KINDS.has(r.kind)) name = undefined;
  else if (name !== undefined && r.kind === 'token') {
    const method = typeof r.spec?.join_method === 'string' ? joinMethodInfo(r.spec.join_method) : undefined;
    if (method?.secretName !== false && !TOKEN_ID_FORM.test(name)) name = tokenId(name, 'token', macKey);
  }
  const kind = typeof r.kind === 'string' ? r.kind.slice(0, 40) : undefined;
  const what = kind && name !== undefined ? `${kind} ${JSON.stringify(name.slice(0, 130))}` : kind;
  if (total === 1) return name !== undefined ? what : undefined;
  return what ? `document ${n} (${what})` : `document ${n}`;
}

/** Codes of a document the request itself got wrong: for tctl, a user error (exit 2). */
const REFUSED: readonly ErrorCode[] = ['BAD_REQUEST', 'BAD_CONFIG', 'NOT_FOUND'];

/** `err` naming the document it is about; a refused document becomes BAD_CONFIG. */
function aboutDocument(err: unknown, input: unknown, n: number, total: number, macKey: Buffer): unknown {
  if (!isMwiError(err) || err.code === 'STORAGE' || err.code === 'INTERNAL') return err;
  const label = documentLabel(input, n, total, macKey);
  // "role "x" already exists" needs no second "role "x""; a file's only document, no "document 1"
  const bare = label?.replace(/^document \d+ \((.*)\)$/, '$1');
  const prefix =
    label === undefined ? '' : err.message.startsWith(bare!) ? (total === 1 ? '' : `document ${n}: `) : `${label}: `;
  const code = REFUSED.includes(err.code) ? 'BAD_CONFIG' : err.code;
  return new MwiError(code, `${prefix}${err.message}`, { cause: err, ...(err.detail ? { detail: err.detail } : {}) });
}

/**
 * Writes resources, all or none: each is validated (the error names the field and, with
 * `labels: 'documents'`, the document, as a BAD_CONFIG) and planned against what is stored,
 * then all are written in one transaction conditioned on what the plans read. Without `upsert`
 * a resource that exists is refused (ALREADY_EXISTS). Returns one reply per resource, in order.
 */
export async function applyResources(
  ctx: AuthContext,
  items: readonly ApplyItem[],
  upsert: boolean,
  user: string,
  labels: Labels,
): Promise<CreatedReply[]> {
  for (let attempt = 1; ; attempt++) {
    const batch: Batch = { roles: new Set(), bots: new Set(), keys: new Map() };
    const plans: Planned[] = [];
    for (const [i, item] of items.entries()) {
      try {
        plans.push(await plan(ctx, item, upsert || item.expectedRevision !== undefined, user, batch, i + 1));
      } catch (err) {
        throw labels === 'documents'
          ? aboutDocument(err, item.resource, i + 1, items.length, ctx.cas.challengeMac)
          : err;
      }
    }
    const ops: TxOp[] = plans.map((p) =>
      p.prev
        ? { op: 'compareAndSwap', key: p.key, revision: p.prev.revision, value: p.text }
        : { op: 'create', key: p.key, value: p.text },
    );
    if (await ctx.backend.transact(ops)) {
      for (const p of plans) {
        const event = p.kind === 'lock' ? 'lock.created' : p.prev ? 'resource.updated' : 'resource.created';
        ctx.audit.emit({ event, success: true, resource: `${p.kind}/${p.name}`, user, ...p.audit });
      }
      return plans.map((p) => ({
        kind: p.kind,
        name: p.name,
        updated: p.prev !== undefined,
        ...(p.shownOnce ? { shown_once: p.shownOnce } : {}),
        ...(p.notes.length ? { notes: p.notes.map((n) => `${p.kind} ${JSON.stringify(p.name)}: ${n}`) } : {}),
      }));
    }
    // something a plan read changed meanwhile (a join, a removal, another administrator): plan again
    if (attempt >= MAX_ATTEMPTS) {
      const what = plans.length === 1 ? `${plans[0]!.kind} ${JSON.stringify(plans[0]!.name)}` : 'the resources';
      throw new MwiError('COMPARE_FAILED', `${what} changed concurrently; nothing was written: try again`);
    }
  }
}
