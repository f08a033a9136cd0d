import { existsSync } from 'node:fs';
import { MAX_APPLY_BODY, MAX_APPLY_RESOURCES } from '../../api/admin.js';
import type { AdminClient } from '../../api/admin-client.js';
import type { Resource } from '../../api/resources.js';
import { MwiError } from '../../errors.js';
import { joinMethodInfo } from '../../join/catalog.js';
import type { Format } from './format.js';
import { printResources } from './format.js';
import { cell, print, printNote, warn } from './output.js';
import { ALL_KINDS, parseNamedRef, parseRefs } from './refs.js';
import { readResources } from './resources-yaml.js';

/** How applyResources writes. */
export interface ApplyOptions {
  /** Replace resources that exist (otherwise the whole file is refused, naming the one that exists). */
  force: boolean;
  /** The storage revision of each resource, by index, as it was read (tctl edit): written only if unchanged. */
  expectedRevisions?: ReadonlyArray<string | undefined>;
  /** Called, before anything is printed, when resources that existed were replaced. */
  onReplaced?: () => void;
}

/**
 * Creates resources, all or none: the Auth Service checks every document before it writes any,
 * and writes them in one transaction, so a refused document (its error names it) leaves nothing
 * applied. Then prints `KIND "NAME" has been created` (or `updated`, for one that existed), as
 * Teleport's tctl does, each resource's shown-once secrets and notes.
 */
export async function applyResources(
  admin: AdminClient,
  resources: Record<string, unknown>[],
  opts: ApplyOptions,
): Promise<void> {
  const { items } = await admin.apply(
    resources.map((resource, i) => {
      const revision = opts.expectedRevisions?.[i];
      return revision !== undefined ? { resource, expected_revision: revision } : { resource };
    }),
    opts.force,
  );
  if (items.some((out) => out.updated)) opts.onReplaced?.();
  for (const out of items) {
    print(`${cell(out.kind)} "${cell(out.name)}" has been ${out.updated ? 'updated' : 'created'}\n`);
    // a secret the Auth Service generated (a bound keypair's registration secret) exists only here
    for (const [k, v] of Object.entries(out.shown_once ?? {}))
      print(`${cell(k)}: ${cell(v)} (shown once: the Auth Service keeps only its hash)\n`);
    for (const note of out.notes ?? []) printNote(note);
  }
}

/**
 * The file of `tctl create -f FILE` as mwi wrote it before `-f` meant `--force`: `-f` right
 * before the only argument, an existing file. It is still read (it is the FILE argument), and
 * the person is told, when resources that existed were replaced, that such resources are now
 * replaced (where mwi refused before). With `--force` too, the command says what it
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
  const onReplaced = () => {
    if (!legacy) return;
    warn(
      `warning: -f means --force, as in Teleport's tctl: ${legacy} is read as the FILE argument and resources ` +
        `that exist are replaced (mwi's tctl read -f as the file name and refused to replace). Write ` +
        `"tctl create ${legacy}" to create only.\n`,
    );
  };
  const file = positionals[0] ?? '-';
  const resources = readResources(file);
  checkRequestLimits(resources, file === '-' ? 'stdin' : file);
  await applyResources(admin, resources, { force, onReplaced });
}

/**
 * The Auth Service's bounds on one apply request (documents, JSON bytes), checked before sending:
 * a file past them is refused as a whole, naming the file, with what to do (split it).
 */
export function checkRequestLimits(resources: Record<string, unknown>[], file: string): void {
  const split = 'the limit is per file (one all-or-nothing request): split the file and create each part';
  if (resources.length > MAX_APPLY_RESOURCES)
    throw new MwiError(
      'BAD_CONFIG',
      `${resources.length} documents, more than the ${MAX_APPLY_RESOURCES} one tctl create sends: ${split}`,
      { field: file },
    );
  // the request as applyResources sends it; YAML aliases are expanded in it
  const bytes = Buffer.byteLength(
    JSON.stringify({ resources: resources.map((resource) => ({ resource })), upsert: false }),
  );
  if (bytes > MAX_APPLY_BODY)
    throw new MwiError(
      'BAD_CONFIG',
      `the resources come to ${bytes} bytes as JSON (YAML aliases expanded), more than the ${MAX_APPLY_BODY} ` +
        `(8 MiB) one request carries: ${split}`,
      { field: file },
    );
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
