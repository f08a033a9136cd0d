import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AdminClient } from '../../api/admin-client.js';
import type { Resource } from '../../api/resources.js';
import { isMwiError, MwiError } from '../../errors.js';
import { usageError } from '../common.js';
import { cell, print, toYaml } from './output.js';
import { parseNamedRef } from './refs.js';
import { applyResources, secretNamed } from './resources.js';
import { parseResources } from './resources-yaml.js';

/** The editor `tctl edit` opens, as Teleport's: $EDITOR, then $VISUAL, then vi. */
export function editorOf(env: NodeJS.ProcessEnv): string {
  return env.EDITOR || env.VISUAL || 'vi';
}

/** Runs the editor on `file` through sh, so that an EDITOR with arguments ("code --wait") works. */
function runEditor(editor: string, file: string): void {
  const r = spawnSync('sh', ['-c', `${editor} "$1"`, 'sh', file], { stdio: 'inherit' });
  if (r.error) throw new MwiError('BAD_CONFIG', `cannot run the editor ${JSON.stringify(editor)}: ${r.error.message}`);
  if (r.status !== 0)
    throw new MwiError(
      'BAD_CONFIG',
      `the editor ${JSON.stringify(editor)} ended with ${r.signal ?? `exit code ${r.status}`}; nothing was applied`,
    );
}

/**
 * `tctl edit KIND/NAME`: the resource as YAML in a private temporary file, opened in the editor;
 * what is saved is applied as `tctl create --force` applies it (the Auth Service checks it), but
 * only if the stored resource is still the one that was read: a change made meanwhile (another
 * administrator, a join that updated a token's status) is never overwritten. An unchanged file
 * writes nothing. When the result is refused, the file is kept and its path given, so no edit is
 * lost.
 */
export async function editCommand(admin: AdminClient, arg: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  const ref = parseNamedRef(arg);
  if (ref.kind === 'bot_instance')
    throw usageError('bot instances are made by joins: they cannot be edited', 'KIND/NAME');
  const { resource: current, revision } = await admin.getWithRevision(ref.kind, ref.name);
  if (current.kind === 'token' && secretNamed(current)) {
    // named by its id: the name given may be the secret itself
    const id = JSON.stringify(current.metadata.name);
    throw usageError(
      `token ${id} uses join method ${current.spec.join_method}, whose secret mwi stores only as a hash, so it ` +
        "cannot be written back (Teleport's tctl edit shows the secret): remove it and add a new one",
      'KIND/NAME',
    );
  }
  // the status is the Auth Service's (a bot's uid, a token's use): left out, it is kept as stored
  const { status: _server, ...editable } = current as Resource & { status?: unknown };
  const original = toYaml(current.kind === 'bot' || current.kind === 'token' ? editable : current);
  // a directory only this user can enter: the file may hold what the Auth Service would not show others
  const dir = mkdtempSync(join(tmpdir(), 'tctl-edit-'));
  const file = join(dir, `${ref.kind}.yaml`);
  writeFileSync(file, original, { mode: 0o600 });
  let done = false;
  // Ctrl-C reaches the editor too: tctl stays to say where the edit is kept (the editor's end is an error below)
  const onInterrupt = () => {};
  process.on('SIGINT', onInterrupt);
  try {
    try {
      runEditor(editorOf(env), file);
    } finally {
      process.off('SIGINT', onInterrupt);
    }
    const text = readFileSync(file, 'utf8');
    if (text === original) {
      done = true;
      return void print(`no changes made to ${ref.kind} "${cell(ref.name)}"\n`);
    }
    const edited = parseResources(text, file);
    const [first] = edited;
    const name = (first?.metadata as { name?: unknown } | undefined)?.name;
    if (edited.length !== 1 || first?.kind !== current.kind || name !== current.metadata.name)
      throw usageError(
        `tctl edit changes one ${current.kind} in place: keep its kind and metadata.name (to rename, create the new ` +
          'one with tctl create and remove the old one)',
      );
    await applyResources(admin, edited, { force: true, expectedRevisions: [revision] });
    done = true;
  } catch (err) {
    // the conditional write found another revision: someone changed (or removed) it meanwhile
    if (isMwiError(err, 'COMPARE_FAILED')) {
      const what = `${ref.kind} ${JSON.stringify(ref.name)}`;
      throw new MwiError(
        'COMPARE_FAILED',
        / was removed /.test(err.message)
          ? `${what} was removed by someone else while you edited it; your edit is kept in ${file}: ` +
              `tctl create ${file} makes it again`
          : `${what} was changed by someone else while you edited it; your edit is kept in ${file}: run tctl ` +
              'edit again',
        { cause: err },
      );
    }
    if (err instanceof Error) err.message = `${err.message} (your edits are kept in ${file})`;
    throw err;
  } finally {
    if (done) rmSync(dir, { recursive: true, force: true });
  }
}
