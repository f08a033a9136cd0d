import { existsSync } from 'node:fs';
import type { AdminClient } from '../../api/admin-client.js';
import type { Resource } from '../../api/resources.js';
import { isMwiError } from '../../errors.js';
import { joinMethodInfo } from '../../join/catalog.js';
import type { Format } from './format.js';
import { printResources } from './format.js';
import { cell, print, printNote, warn } from './output.js';
import { ALL_KINDS, parseNamedRef, parseRefs } from './refs.js';
import { readResources } from './resources-yaml.js';

/** Whether a resource of this kind and name exists (only to say "created" or "updated"). */
async function exists(admin: AdminClient, resource: Record<string, unknown>): Promise<boolean> {
  const { kind, metadata } = resource as { kind?: unknown; metadata?: { name?: unknown } };
  if (typeof kind !== 'string' || typeof metadata?.name !== 'string') return false;
  try {
    await admin.get(kind, metadata.name);
    return true;
  } catch (err) {
    // anything else (a bad kind, say) is for the create that follows to report
    if (isMwiError(err)) return false;
    throw err;
  }
}

/**
 * Creates resources, printing `KIND "NAME" has been created` (or `updated`, with `force`, for one
 * that existed), as Teleport's tctl does. `beforeReplace` runs before a resource that exists is
 * replaced.
 */
export async function applyResources(
  admin: AdminClient,
  resources: Record<string, unknown>[],
  force: boolean,
  beforeReplace: () => void = () => {},
): Promise<void> {
  for (const resource of resources) {
    const existed = force && (await exists(admin, resource));
    if (existed) beforeReplace();
    const out = await admin.create(resource, force);
    print(`${cell(out.kind)} "${cell(out.name)}" has been ${existed ? 'updated' : 'created'}\n`);
    // a secret the Auth Service generated (a bound keypair's registration secret) exists only here
    for (const [k, v] of Object.entries(out.shown_once ?? {}))
      print(`${cell(k)}: ${cell(v)} (shown once: the Auth Service keeps only its hash)\n`);
    for (const note of out.notes ?? []) printNote(note);
  }
}

/**
 * The file of `tctl create -f FILE` as mwi wrote it before `-f` meant `--force`: `-f` right
 * before the only argument, an existing file. It is still read (it is the FILE argument), and
 * the person is told, before the first resource that exists is replaced, that such resources
 * are now replaced (where mwi refused before). With `--force` too, the command says what it
 * means and nobody is warned.
 */
export function legacyForceFile(argv: string[], positionals: string[]): string | undefined {
  if (argv.includes('--force')) return undefined;
  const i = argv.indexOf('-f');
  const file = i < 0 ? undefined : argv[i + 1];
  if (file === undefined || positionals.length !== 1 || positionals[0] !== file || !existsSync(file)) return undefined;
  return file;
}

/** `tctl create [FILE] [-f|--force]`: FILE absent or `-` reads stdin. */
export async function createCommand(
  admin: AdminClient,
  argv: string[],
  positionals: string[],
  force: boolean,
): Promise<void> {
  const legacy = legacyForceFile(argv, positionals);
  let warned = !legacy;
  const beforeReplace = () => {
    if (warned) return;
    warned = true;
    warn(
      `warning: -f means --force, as in Teleport's tctl: ${legacy} is read as the FILE argument and resources ` +
        `that exist are replaced (mwi's tctl read -f as the file name and refused to replace). Write ` +
        `"tctl create ${legacy}" to create only.\n`,
    );
  };
  await applyResources(admin, readResources(positionals[0] ?? '-'), force, beforeReplace);
}

/** Tokens whose name is their secret: mwi keeps only a hash, so they cannot be written back by create. */
export function secretNamed(r: Resource): boolean {
  return r.kind === 'token' && Boolean(joinMethodInfo(r.spec.join_method)?.secretName);
}

/**
 * `tctl get RESOURCES`: one reference, several (`token/a,bot/b`), or `all` (roles, bots, tokens,
 * locks: what create takes back). JSON is one array, YAML documents joined with `---`.
 */
export async function getCommand(admin: AdminClient, arg: string, format: Format): Promise<void> {
  const refs = parseRefs(arg);
  const items: Resource[] = [];
  if (refs === 'all') {
    for (const kind of ALL_KINDS) items.push(...(await admin.listAll(kind)));
    const hidden = items.filter(secretNamed);
    if (hidden.length > 0)
      warn(
        `note: ${hidden.length} join token(s) of a method whose name is the secret (token) are left out: mwi ` +
          'stores only their hash, so they cannot be exported or created again (Teleport\'s "get all" includes ' +
          'them with their secret)\n',
      );
    return printResources(
      items.filter((i) => !secretNamed(i)),
      format === 'text' ? 'yaml' : format,
    );
  }
  for (const ref of refs) {
    if (ref.name !== undefined) items.push(await admin.get(ref.kind, ref.name));
    else items.push(...(await admin.listAll(ref.kind)));
  }
  printResources(items, format === 'text' ? 'yaml' : format);
}

/** `tctl rm KIND/NAME`. */
export async function rmCommand(admin: AdminClient, arg: string | undefined): Promise<void> {
  const ref = parseNamedRef(arg);
  await admin.remove(ref.kind, ref.name);
  print(`${cell(ref.kind)} "${cell(ref.name)}" has been deleted\n`);
}
