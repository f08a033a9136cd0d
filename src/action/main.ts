import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as core from '@actions/core';
import { startBot } from '../agent/bot.js';
import { validateTbotConfig } from '../agent/config.js';
import { exitCodeFor } from '../errors.js';
import { createLogger, type Logger } from '../util/log.js';
import { escapeUnsafe } from '../util/text.js';
import { inInputTerms, planAction, STATE_DESTINATION } from './inputs.js';

/** tbot's log in the step's log; its warnings also as annotations on the run. */
function stepLogger(): Logger {
  const log = createLogger('tbot', core.isDebug() ? 'debug' : 'info', 'text');
  return {
    ...log,
    warn(msg, fields) {
      log.warn(msg, fields);
      core.warning(escapeUnsafe(msg));
    },
  };
}

/**
 * The action's main step: a one-shot tbot (github join, memory storage) in this process writes an
 * identity output to a fresh 0700 directory under RUNNER_TEMP; the step hands on its paths.
 */
async function main(): Promise<void> {
  const plan = planAction((name) => core.getInput(name), process.env.RUNNER_TEMP, randomUUID(), realpathSync);
  for (const note of plan.notes) core.info(note);
  let cfg;
  try {
    // the inputs are the whole configuration: no tbot variable of the job's environment applies
    cfg = validateTbotConfig(plan.tbotYaml, {});
  } catch (err) {
    throw inInputTerms(err);
  }
  const log = stepLogger();
  log.debug('configuration', {
    auth_servers: cfg.authServers.join(','),
    proxy_server: cfg.proxyServer,
    join_method: cfg.joinMethod,
    storage: cfg.storage.type,
    destination: plan.destination,
    credential_ttl_ms: cfg.credentialTtlMs,
  });
  // saved before anything is made: the post step removes whatever a failed or cancelled run left
  core.saveState(STATE_DESTINATION, plan.destination);
  mkdirSync(plan.destination, { mode: 0o700 });
  try {
    const bot = await startBot(cfg, log, new AbortController().signal);
    await bot.done;
  } catch (err) {
    rmSync(plan.destination, { recursive: true, force: true });
    throw err;
  }
  // the key is in files only; should a later step print one, the runner masks it
  for (const line of readFileSync(join(plan.destination, 'key'), 'utf8').split('\n'))
    if (line && !line.startsWith('-----')) core.setSecret(line);
  for (const [name, value] of Object.entries(plan.outputs)) core.setOutput(name, value);
  for (const [name, value] of Object.entries(plan.env)) core.exportVariable(name, value);
  core.info(`credentials written to ${plan.destination} (removed when the job ends)`);
}

main().catch((err: unknown) => {
  core.setFailed(err instanceof Error ? err.message : String(err));
  process.exitCode = exitCodeFor(err);
});
