// The main job on the embedded default: an Auth Service on SQLite under ./.demo, a demo bot,
// and tbot joined with it, renewing short-lived credentials until Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { userInfo } from 'node:os';

const root = resolve(import.meta.dirname, '..');
const demo = process.env.MWI_DEMO_DIR ? resolve(process.env.MWI_DEMO_DIR) : join(root, '.demo');
const cli = (name) => join(root, 'dist/src/cli', `${name}.js`);
// the demo and its processes stop when their parent goes away (see exit-with-parent.mjs)
await import('./exit-with-parent.mjs');
const watched = ['--import', join(root, 'scripts/exit-with-parent.mjs')];
rmSync(demo, { recursive: true, force: true });
mkdirSync(demo, { recursive: true });
const dataDir = join(demo, 'auth');
const out = join(demo, 'out');

const children = [];
const say = (s) => process.stdout.write(`\x1b[1m==> ${s}\x1b[0m\n`);
const tctl = (...args) => {
  const r = spawnSync(process.execPath, [cli('tctl'), '--data-dir', dataDir, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

say(`starting the Auth Service (SQLite under ${dataDir})`);
const auth = spawn(process.execPath, [...watched, cli('mwi'), 'start', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--cluster-name', 'demo.local'], { stdio: ['ignore', 'pipe', 'inherit'] });
children.push(auth);
let authOut = '';
const started = await new Promise((res, rej) => {
  auth.stdout.on('data', (d) => {
    authOut += d;
    process.stdout.write(d);
    const m = /listening on (\S+)\nCA pin: (\S+)/.exec(authOut);
    if (m) res({ addr: m[1], pin: m[2] });
  });
  auth.on('exit', (c) => rej(new Error(`mwi start exited with ${c}`)));
});

say('creating role "demo" (login: your user) and bot "demo-bot"');
const role = join(demo, 'role.yaml');
writeFileSync(role, `kind: role\nversion: v7\nmetadata: { name: demo }\nspec:\n  options: { max_session_ttl: 1h }\n  allow:\n    logins: [${JSON.stringify(userInfo().username)}]\n`);
process.stdout.write(tctl('create', role));
const bot = JSON.parse(tctl('bots', 'add', 'demo-bot', '--roles', 'demo', '--format', 'json'));
process.stdout.write(`single-use token id ${bot.id}, expires ${bot.expires}\n`);
// the secret goes to tbot as a 0600 file, never on its command line (ps shows arguments to every user)
const tokenFile = join(demo, 'tbot-token');
writeFileSync(tokenFile, `${bot.token}\n`, { mode: 0o600 });

say(`starting tbot: credentials in ${out}, 1m TTL, renewing every 15s`);
const tbot = spawn(
  process.execPath,
  [...watched, cli('tbot'), 'start', '--auth-server', started.addr, '--token', tokenFile, '--ca-pin', started.pin, '--data-dir', join(demo, 'bot'), '--destination-dir', out, '--certificate-ttl', '1m', '--renewal-interval', '15s'],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
children.push(tbot);

const showCreds = () => {
  if (!existsSync(join(out, 'key-cert.pub'))) return;
  const r = spawnSync('ssh-keygen', ['-L', '-f', join(out, 'key-cert.pub')], { encoding: 'utf8' });
  const valid = /Valid: (.*)/.exec(r.stdout ?? '')?.[1] ?? '(ssh-keygen not installed)';
  say(`${out}: SSH cert valid ${valid}; files: identity key key.pub key-cert.pub tlscert tlscacerts sshcacerts known_hosts ssh_config`);
};
const timer = setInterval(showCreds, 16_000);
setTimeout(showCreds, 2000);
say('press Ctrl-C to stop');

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  say('stopping tbot and the Auth Service');
  for (const c of children.reverse()) {
    c.kill('SIGTERM');
    await new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r)));
  }
  say(`bot instances and audit log kept under ${demo}`);
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.on('SIGHUP', stop);
tbot.on('exit', (c) => {
  if (!stopping) {
    process.stderr.write(`tbot exited with ${c}\n`);
    void stop();
  }
});

