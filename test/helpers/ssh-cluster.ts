// The scene of a tbot end-to-end test: a real Auth Service, one bot whose role allows this
// machine's user to log in, and a real sshd that trusts the cluster, for the bot's certificates to
// log in to.
import assert from 'node:assert/strict';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { startCluster, type TestCluster } from './cluster.js';
import { sshRun, startSshd, type Sshd } from './sshd.js';

export interface SshCluster {
  c: TestCluster;
  sshd: Sshd;
  /** This machine's user: the login the bot's role allows. */
  me: string;
  /** Stops sshd, then the Auth Service. */
  stop(): Promise<void>;
}

/** Starts `mwi start` (cluster `name`, with `mwiYaml`), its sshd in `<dir>/sshd`, and adds `bot`. */
export async function startSshCluster(name: string, mwiYaml: string | undefined, bot: string): Promise<SshCluster> {
  const me = userInfo().username;
  const c = await startCluster(name, mwiYaml);
  let sshd: Sshd | undefined;
  try {
    sshd = await startSshd(c, join(c.dir, 'sshd'));
    await c.addBot(bot, [me]);
  } catch (err) {
    await sshd?.stop();
    await c.stop();
    throw err;
  }
  const started = sshd;
  return {
    c,
    sshd: started,
    me,
    async stop() {
      await started.stop();
      await c.stop();
    },
  };
}

/**
 * Logs in with the credentials tbot wrote to `out` and runs `echo word`: asserts the login and
 * the echo, with sshd's log (and `context`, e.g. tbot's output) on failure.
 */
export async function assertSshLogin(s: SshCluster, out: string, word: string, context = ''): Promise<void> {
  const login = await sshRun(out, s.sshd.port, s.me, `echo ${word}`);
  assert.equal(login.code, 0, `${login.stderr}\nsshd: ${s.sshd.log().slice(-1500)}${context ? `\n${context}` : ''}`);
  assert.equal(login.stdout.trim(), word);
}
