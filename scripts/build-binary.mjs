#!/usr/bin/env node
// `npm run build:binary`: tbot, tctl and mwi as single executables for this platform (Linux x64
// here), runnable without Node.js installed. Node's single executable applications: esbuild
// bundles each program's TypeScript entry point (src/cli/<name>.ts) to one CommonJS file, node
// turns it into a blob, postject injects the blob into a copy of the node binary running this
// script. The mwi binary also embeds better-sqlite3's native module and the WAL checkpointer's
// bundle as assets (src/util/native.ts loads them). No network; the same inputs give the same files.
//
// Output: build/bin/{tbot,tctl,mwi} and build/bin/SHA256SUMS, or in `--out DIR` (tests build into
// their temp dir). Intermediate files go to a temp dir, removed at the end.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { out: { type: 'string' } } });
const OUT = resolve(args.out ?? join(ROOT, 'build', 'bin'));
const WORK = mkdtempSync(join(tmpdir(), 'mwi-build-binary-'));
process.on('exit', () => rmSync(WORK, { recursive: true, force: true }));
const require = createRequire(import.meta.url);
/** postject's marker in the node binary (Node's documented value). */
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const PROGRAMS = ['tbot', 'tctl', 'mwi'];
/** Worker threads started by `startWorker()` (src/util/native.ts): a bundle each, embedded in mwi. */
const WORKERS = { checkpointer: 'src/storage/checkpointer.ts' };

const started = Date.now();
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;

if (process.platform !== 'linux') {
  console.error(`build:binary: builds for Linux only (this is ${process.platform})`);
  process.exit(2);
}
mkdirSync(OUT, { recursive: true });

// 1. bundles. import.meta.url is the bundle's own file URL, as in the ES module it replaces (in
// the binary, the binary's path: code that needs a file beside it goes through node:sea assets).
const esbuild = await import('esbuild');
const bundle = async (entry, outfile) => {
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    define: { 'import.meta.url': '__mwi_import_meta_url' },
    banner: {
      js:
        'var __mwi_import_meta_url = typeof __filename === "string" ? ' +
        'require("node:url").pathToFileURL(__filename).href : undefined;',
    },
    logLevel: 'silent',
  });
  // a warning in a bundle (an import that cannot be resolved, a require it cannot see) is a bug
  // that would only show at run time in the binary
  if (result.warnings.length > 0) {
    const text = await esbuild.formatMessages(result.warnings, { kind: 'warning' });
    console.error(text.join('\n'));
    throw new Error(`esbuild warned about ${entry}`);
  }
};
await Promise.all([
  ...PROGRAMS.map((p) => bundle(`src/cli/${p}.ts`, join(WORK, `${p}.cjs`))),
  ...Object.entries(WORKERS).map(([name, entry]) => bundle(entry, join(WORK, `${name}.cjs`))),
]);

// 2. the node binary to copy: this one, without its symbol tables when strip(1) is there (~13 MB
// less; the dynamic symbols that native modules link against stay)
const NODE = join(WORK, 'node');
copyFileSync(process.execPath, NODE);
const stripped = spawnSync('strip', [NODE], { stdio: 'ignore' }).status === 0;
if (!stripped) copyFileSync(process.execPath, NODE);

// 3. one blob per program, injected into its copy of node
const addon = join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node');
const { inject } = require('postject');
const KOFFI_ADDON = join(
  dirname(require.resolve(`@koromix/koffi-${process.platform}-${process.arch}/package.json`)),
  `${process.platform}_${process.arch}`,
  'koffi.node',
);
const sums = [];
for (const p of PROGRAMS) {
  const assets =
    p === 'mwi'
      ? {
          'better_sqlite3.node': addon,
          ...Object.fromEntries(Object.keys(WORKERS).map((w) => [`${w}.cjs`, join(WORK, `${w}.cjs`)])),
        }
      : {};
  // tbot's Workload API reads SO_PEERCRED through koffi: its addon for this platform (src/util/native.ts loadKoffi)
  if (p === 'tbot') assets['koffi.node'] = KOFFI_ADDON;
  const config = join(WORK, `${p}.sea.json`);
  const blob = join(WORK, `${p}.blob`);
  writeFileSync(
    config,
    JSON.stringify({ main: join(WORK, `${p}.cjs`), output: blob, disableExperimentalSEAWarning: true, assets }),
  );
  // (its one line of success goes to stderr: shown only if it fails)
  const made = spawnSync(process.execPath, ['--experimental-sea-config', config], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`node --experimental-sea-config ${config}: ${made.stderr}${made.stdout}`);
  // (written beside its final name and renamed: a binary in use is replaced, never rewritten)
  const tmp = join(OUT, `.${p}.tmp`);
  copyFileSync(NODE, tmp);
  // (postject warns that it cannot find the name of one of node's `.note` sections: harmless, not
  // shown. No V8 code cache (useCodeCache): it made the binaries differ from build to build)
  const warn = console.warn;
  console.warn = (...m) => (/string offset for section name '\.note/.test(m.join(' ')) ? undefined : warn(...m));
  try {
    await inject(tmp, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: FUSE });
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    console.warn = warn;
  }
  chmodSync(tmp, 0o755);
  renameSync(tmp, join(OUT, p));
  const bytes = readFileSync(join(OUT, p));
  sums.push(`${createHash('sha256').update(bytes).digest('hex')}  ${p}`);
}
writeFileSync(join(OUT, 'SHA256SUMS'), sums.join('\n') + '\n');

const shown = relative(process.cwd(), OUT).startsWith('..') ? OUT : relative(process.cwd(), OUT) || '.';
const sizes = PROGRAMS.map((p) => `${p} ${mb(statSync(join(OUT, p)).size)}`).join(', ');
console.log(`built ${shown}/{${PROGRAMS.join(',')}}: ${sizes}`);
console.log(
  `(node ${process.version} ${process.platform}-${process.arch}${stripped ? ', symbols stripped' : ''}; ` +
    `${((Date.now() - started) / 1000).toFixed(1)} s; checksums in ${shown}/SHA256SUMS)`,
);
