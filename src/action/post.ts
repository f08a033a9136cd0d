import { existsSync, realpathSync, rmSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import * as core from '@actions/core';
import { STATE_DESTINATION } from './inputs.js';

/** RUNNER_TEMP without links, or undefined when it is unset or gone (then nothing is removed). */
function realTemp(temp: string | undefined): string | undefined {
  if (!temp) return undefined;
  try {
    return realpathSync(temp);
  } catch {
    return undefined;
  }
}

/**
 * The action's post step (it runs when the job ends, whether the main step passed, failed half-way
 * or never ran): removes the credentials directory. It never fails the job: clean-up trouble is
 * a warning.
 */
function post(): void {
  const dir = core.getState(STATE_DESTINATION);
  if (!dir) return void core.info('no credentials to remove (the main step wrote none)');
  // only the directory the main step named: RUNNER_TEMP/mwi-<uuid>, nothing a state value could aim
  // elsewhere; RUNNER_TEMP by its real path, as the main step planned it (a runner's _work may be a link)
  const temp = realTemp(process.env.RUNNER_TEMP);
  if (!temp || dirname(resolve(dir)) !== temp || !/^mwi-[0-9a-f-]{36}$/.test(basename(dir)))
    return void core.warning(`not removing ${dir}: not a directory this action makes (RUNNER_TEMP/mwi-<uuid>)`);
  if (!existsSync(dir)) return void core.info(`no credentials to remove (${dir} was never written)`);
  rmSync(dir, { recursive: true, force: true });
  core.info(`removed the credentials in ${dir}`);
}

try {
  post();
} catch (err) {
  core.warning(`could not remove the credentials: ${err instanceof Error ? err.message : String(err)}`);
}
