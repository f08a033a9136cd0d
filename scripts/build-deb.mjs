#!/usr/bin/env node
// `npm run build:deb`: build/mwi_<version>_<arch>.deb, made with dpkg-deb from the single
// executables (`npm run build:binary` first, or `--bin DIR` for ones already built) and the package
// files in deploy/deb/: /usr/bin/{tbot,tctl,mwi}; mwi.service and tbot.service in
// /lib/systemd/system, written by the generator `install systemd` uses (src/util/systemd-unit.ts)
// with the package's paths; example configs in /etc/mwi (conffiles); maintainer scripts that make
// the users and /var/lib dirs (postinst) and remove the data on purge only (postrm).
//
//   node scripts/build-deb.mjs [--bin DIR] [--out DIR] [--fast]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEB = join(ROOT, 'deploy', 'deb');
const PROGRAMS = ['tbot', 'tctl', 'mwi'];
const started = Date.now();

const { values: args } = parseArgs({
  options: { bin: { type: 'string' }, out: { type: 'string' }, fast: { type: 'boolean' } },
});
const fail = (message) => {
  console.error(`build:deb: ${message}`);
  process.exit(2);
};
if (spawnSync('dpkg-deb', ['--version'], { stdio: 'ignore' }).status !== 0)
  fail("needs dpkg-deb (Debian's dpkg package) on PATH");
const ARCH = { x64: 'amd64', arm64: 'arm64' }[process.arch] ?? fail(`no Debian architecture for ${process.arch}`);

// the binaries: the ones given, or built now from these sources
let bin = args.bin && resolve(args.bin);
if (!bin) {
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-binary.mjs')], { stdio: 'inherit' });
  if (built.status !== 0) process.exit(built.status ?? 1);
  bin = join(ROOT, 'build', 'bin');
}
const out = resolve(args.out ?? join(ROOT, 'build'));
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const stage = mkdtempSync(join(tmpdir(), 'mwi-build-deb-'));
process.on('exit', () => rmSync(stage, { recursive: true, force: true }));
const root = join(stage, 'root');

/** Puts `data` (or a copy of `from`) at `path` inside the package, with `mode`. */
function put(path, mode, { from, data }) {
  const to = join(root, path);
  mkdirSync(dirname(to), { recursive: true, mode: 0o755 });
  if (from) copyFileSync(from, to);
  else writeFileSync(to, data);
  chmodSync(to, mode);
}

for (const p of PROGRAMS) put(`usr/bin/${p}`, 0o755, { from: join(bin, p) });

// the units: the same generator as `tbot install systemd` and `mwi install systemd`
const esbuild = await import('esbuild');
const unitModule = await esbuild.build({
  absWorkingDir: ROOT,
  entryPoints: ['src/util/systemd-unit.ts'],
  bundle: true,
  platform: 'node',
  format: 'esm',
  write: false,
  logLevel: 'silent',
});
const { systemdUnit } = await import(
  `data:text/javascript;base64,${Buffer.from(unitModule.outputFiles[0].text).toString('base64')}`
);
const units = {
  mwi: { description: 'mwi Auth Service (Machine & Workload Identity)', data: '/var/lib/mwi' },
  tbot: { description: 'mwi tbot: Machine & Workload Identity agent', data: '/var/lib/tbot' },
};
for (const [name, u] of Object.entries(units)) {
  const text = systemdUnit({
    description: u.description,
    user: name,
    group: name,
    execStart: [`/usr/bin/${name}`, 'start', '-c', `/etc/mwi/${name}.yaml`],
    readWritePaths: [u.data],
  });
  put(`lib/systemd/system/${name}.service`, 0o644, { data: text });
}

for (const f of ['mwi.yaml', 'tbot.yaml']) put(`etc/mwi/${f}`, 0o644, { from: join(DEB, f) });
put('usr/share/doc/mwi/copyright', 0o644, { from: join(DEB, 'copyright') });

// control: the C library version the binaries need (node's and the SQLite module's symbol
// versions, as dpkg-shlibdeps would find them), the installed size in KiB
const files = spawnSync('find', ['.', '-type', 'f'], { cwd: root, encoding: 'utf8' })
  .stdout.split('\n')
  .filter(Boolean)
  .map((f) => f.slice(2))
  .sort();
let glibc = 28;
for (const p of PROGRAMS)
  for (const m of readFileSync(join(bin, p))
    .toString('latin1')
    .matchAll(/GLIBC_2\.(\d+)/g))
    glibc = Math.max(glibc, Number(m[1]));
const kib = files.reduce((n, f) => n + Math.ceil(statSync(join(root, f)).size / 1024), 0);
const control = readFileSync(join(DEB, 'control.in'), 'utf8')
  .replace('@VERSION@', version)
  .replace('@ARCH@', ARCH)
  .replace('@MAINTAINER@', process.env.DEB_MAINTAINER ?? 'mwi developers <mwi@localhost>')
  .replace('@INSTALLED_SIZE@', String(kib))
  .replace('@GLIBC@', `2.${glibc}`);
put('DEBIAN/control', 0o644, { data: control });
put('DEBIAN/conffiles', 0o644, { from: join(DEB, 'conffiles') });
for (const s of ['postinst', 'prerm', 'postrm']) put(`DEBIAN/${s}`, 0o755, { from: join(DEB, s) });
const md5 = files.map(
  (f) =>
    `${createHash('md5')
      .update(readFileSync(join(root, f)))
      .digest('hex')}  ${f}`,
);
put('DEBIAN/md5sums', 0o644, { data: `${md5.join('\n')}\n` });

// every directory 0755, whatever this process's umask made them
for (const d of spawnSync('find', ['.', '-type', 'd'], { cwd: root, encoding: 'utf8' }).stdout.split('\n'))
  if (d) chmodSync(join(root, d), 0o755);

// the same sources give the same package: file times are clamped to the last commit's
const git = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' });
const epoch = process.env.SOURCE_DATE_EPOCH ?? (git.status === 0 ? git.stdout.trim() : '0');
mkdirSync(out, { recursive: true });
const deb = join(out, `mwi_${version}_${ARCH}.deb`);
// gzip: every dpkg reads it, and it takes seconds where xz (dpkg-deb's default) takes minutes;
// level 6 is within 1% of 9 in size at a third of the time (--fast: level 1, 10% larger, for tests)
const level = args.fast ? '-z1' : '-z6';
const made = spawnSync('dpkg-deb', ['--root-owner-group', '-Zgzip', level, '--build', root, deb], {
  encoding: 'utf8',
  env: { ...process.env, SOURCE_DATE_EPOCH: epoch },
});
if (made.status !== 0) fail(`dpkg-deb failed: ${made.stderr}${made.stdout}`);

const shown = relative(process.cwd(), deb).startsWith('..') ? deb : relative(process.cwd(), deb);
console.log(
  `built ${shown}: ${(statSync(deb).size / 1e6).toFixed(1)} MB (installed ${(kib / 1024).toFixed(0)} MiB; ` +
    `${((Date.now() - started) / 1000).toFixed(1)} s)`,
);
