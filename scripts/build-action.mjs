#!/usr/bin/env node
// Bundles the GitHub Action's entry points (src/action/main.ts, post.ts) with everything they import
// into self-contained CommonJS files: a runner has node but no node_modules. action.yml points at
// them (action/dist/main.cjs, post.cjs). Usage: node scripts/build-action.mjs [--outdir DIR]
// (default action/dist). The output is not committed on main: a release tag carries it
// (docs/deploy/github-actions.md, "Releases").
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const at = process.argv.indexOf('--outdir');
const outdir = at > 0 && process.argv[at + 1] ? resolve(process.argv[at + 1]) : join(root, 'action', 'dist');

await build({
  entryPoints: { main: join(root, 'src/action/main.ts'), post: join(root, 'src/action/post.ts') },
  outdir,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // the same input gives the same bytes: no timestamps, no absolute paths, no minified names to review
  legalComments: 'inline',
  charset: 'utf8',
  logLevel: 'warning',
  absWorkingDir: root,
});
process.stdout.write(`wrote ${join(outdir, 'main.cjs')} and ${join(outdir, 'post.cjs')}\n`);
