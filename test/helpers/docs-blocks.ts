// The deploy guides' command blocks, read as a test runs them. Every shell block carries a marker
// comment saying whether the docs test runs it (`<!-- test: run -->`) or why not
// (`<!-- test: skip: REASON -->`); `<!-- test: file NAME -->` writes the next block to a file and a
// `<!-- test: hidden ... -->` comment holds commands the reader does not see. The convention is
// described for writers in docs/deploy/README.md ("Keeping these guides true").
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

export type DocStep =
  | { kind: 'run'; line: number; code: string }
  | { kind: 'skip'; line: number; reason: string }
  | { kind: 'file'; line: number; name: string; text: string }
  | { kind: 'hidden'; line: number; code: string };

/** Info strings of the blocks that are commands (an unlabelled block is taken for one too). */
const SHELL = new Set(['', 'sh', 'bash', 'shell', 'console']);
const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/;
const MARKER = /^<!--\s*test:\s*(.*?)\s*-->$/;
const HIDDEN_OPEN = /^<!--\s*test:\s*hidden\s*$/;
/** A file name for `test: file`: relative, no `..`, no shell metacharacters. */
const FILE_NAME = /^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$))[A-Za-z0-9._/-]+$/;

type Marker = { kind: 'run' } | { kind: 'skip'; reason: string } | { kind: 'file'; name: string };

function parseMarker(body: string, line: number): Marker {
  if (body === 'run') return { kind: 'run' };
  const skip = /^skip:\s*(\S.*)$/.exec(body);
  if (skip) return { kind: 'skip', reason: skip[1]! };
  if (body === 'skip' || body.startsWith('skip'))
    throw new Error(`line ${line}: "test: skip" needs a reason: <!-- test: skip: REASON -->`);
  const file = /^file\s+(\S+)$/.exec(body);
  if (file) {
    if (!FILE_NAME.test(file[1]!)) throw new Error(`line ${line}: "test: file ${file[1]}": a relative path, no ".."`);
    return { kind: 'file', name: file[1]! };
  }
  throw new Error(`line ${line}: unknown marker "test: ${body}" (run, skip: REASON, file NAME, hidden)`);
}

/**
 * The steps of one page, in order. Throws naming the line for a shell block without a marker, a
 * marker with no block after it, two markers for one block, or a marker it does not know.
 * `runSkipped` turns the skipped blocks it accepts (by their reason) into run steps: for a test
 * that has what the docs test lacks (container.test.ts has the images).
 */
export function docSteps(markdown: string, runSkipped?: (reason: string) => boolean): DocStep[] {
  const lines = markdown.split('\n');
  const steps: DocStep[] = [];
  let pending: { marker: Marker; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.trim();
    const lineNo = i + 1;
    if (HIDDEN_OPEN.test(text)) {
      if (pending) throw new Error(`line ${pending.line}: the marker is not followed by a code block`);
      const body: string[] = [];
      for (i++; i < lines.length && lines[i]!.trim() !== '-->'; i++) body.push(lines[i]!);
      if (i >= lines.length) throw new Error(`line ${lineNo}: "test: hidden" is not closed by a line "-->"`);
      steps.push({ kind: 'hidden', line: lineNo, code: body.join('\n') });
      continue;
    }
    const marker = MARKER.exec(text);
    if (marker) {
      if (pending) throw new Error(`line ${lineNo}: a second marker; the one at line ${pending.line} has no block`);
      pending = { marker: parseMarker(marker[1]!, lineNo), line: lineNo };
      continue;
    }
    const fence = FENCE.exec(lines[i]!);
    if (fence) {
      const [, indent, ticks, info] = fence;
      const body: string[] = [];
      const close = new RegExp(`^\\s*${ticks![0] === '`' ? '`' : '~'}{${ticks!.length},}\\s*$`);
      for (i++; i < lines.length && !close.test(lines[i]!); i++) body.push(lines[i]!.slice(indent!.length));
      if (i >= lines.length) throw new Error(`line ${lineNo}: the code block is not closed`);
      const code = body.join('\n');
      const shell = SHELL.has(info!.toLowerCase());
      if (!pending) {
        if (shell)
          throw new Error(
            `line ${lineNo}: a shell block without a marker: put <!-- test: run --> or ` +
              '<!-- test: skip: REASON --> before it',
          );
        continue;
      }
      const { marker: m, line } = pending;
      pending = undefined;
      if (m.kind === 'file') steps.push({ kind: 'file', line: lineNo, name: m.name, text: code });
      else if (!shell) throw new Error(`line ${line}: "test: ${m.kind}" is for shell blocks; this one is "${info}"`);
      else if (m.kind === 'run' || runSkipped?.(m.reason)) steps.push({ kind: 'run', line: lineNo, code });
      else steps.push({ kind: 'skip', line: lineNo, reason: m.reason });
      continue;
    }
    if (pending && text !== '') throw new Error(`line ${pending.line}: the marker is not followed by a code block`);
  }
  if (pending) throw new Error(`line ${pending.line}: the marker is not followed by a code block`);
  return steps;
}

/** Writes one step's text as a here-document that nothing in it can end early. */
function hereDoc(text: string): string {
  let tag = 'MWI_DOCS_EOF';
  while (text.split('\n').includes(tag)) tag += '_';
  return `<<'${tag}'\n${text}\n${tag}`;
}

/**
 * One bash script for a page: its steps in order, `replace`'s keys swapped for their values in
 * what runs and what is written, and an ERR trap naming the block's line when a command fails.
 */
export function docScript(steps: DocStep[], replace: Record<string, string>): string {
  const sub = (s: string) => Object.entries(replace).reduce((acc, [k, v]) => acc.split(k).join(v), s);
  const out = [
    'set -Eeuo pipefail',
    'MWI_DOCS_LINE=0',
    `trap 'echo "docs test: a command failed in the block at line $MWI_DOCS_LINE" >&2' ERR`,
  ];
  for (const s of steps) {
    if (s.kind === 'skip') continue;
    out.push(`MWI_DOCS_LINE=${s.line}`);
    if (s.kind === 'file') out.push(`mkdir -p "$(dirname '${s.name}')"`, `cat > '${s.name}' ${hereDoc(sub(s.text))}`);
    else out.push(sub(s.code));
  }
  return `${out.join('\n')}\n`;
}

/** The block of guide `page` (a path) that the docs convention writes to `name` (`<!-- test: file NAME -->`). */
export function guideFile(page: string, name: string): string {
  const m = new RegExp(`<!-- test: file ${name.replace(/\./g, '\\.')} -->\\s*\`\`\`\\w*\\n([\\s\\S]*?)\`\`\``).exec(
    readFileSync(page, 'utf8'),
  );
  assert.ok(m, `${page} has no block for ${name}`);
  return m[1]!;
}
