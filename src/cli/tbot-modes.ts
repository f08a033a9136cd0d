import { usageError } from './common.js';

/** What `tbot start|configure [MODE]` runs: the legacy form (no mode) or an identity output. */
export type StartMode = 'legacy' | 'identity';

const MODES: Record<string, StartMode> = { legacy: 'legacy', identity: 'identity', id: 'identity', ssh: 'identity' };

/** Teleport's other start/configure modes (and aliases): outputs and services mwi does not have. */
const TELEPORT_ONLY = new Set([
  'database',
  'db',
  'kubernetes',
  'k8s',
  'kubernetes/v2',
  'k8s/v2',
  'kubernetes/argo-cd',
  'application',
  'app',
  'application-tunnel',
  'app-tunnel',
  'application-proxy',
  'database-tunnel',
  'db-tunnel',
  'ssh-multiplexer',
  'spiffe-svid',
  'workload-identity-x509',
  'workload-identity-jwt',
  'workload-identity-api',
  'workload-identity-aws-roles-anywhere',
  'noop',
]);

/** The mode named by `tbot start`'s arguments; the legacy form when none is given. */
export function startMode(cmd: string, positionals: string[]): StartMode {
  const [name, extra] = positionals;
  if (extra !== undefined) throw usageError(`unexpected argument ${JSON.stringify(extra)} (see tbot --help)`);
  if (name === undefined) return 'legacy';
  const mode = MODES[name];
  if (mode) return mode;
  if (name === 'database' || name === 'db')
    throw usageError(
      `mwi has no ${name} mode (Teleport's tbot ${cmd} ${name}): write a database output in tbot.yaml instead ` +
        '(outputs: - type: database, with service, username, format: tls; docs/outputs.md) and run tbot start -c FILE',
    );
  if (name === 'workload-identity-x509' || name === 'workload-identity-jwt')
    throw usageError(
      `mwi has the ${name} output but not yet its command-line mode (Teleport's tbot ${cmd} ${name}): write ` +
        `it in tbot.yaml (outputs: [{type: ${name}, selector: {name: NAME}, destination: ...}], docs/outputs.md) ` +
        `and run tbot ${cmd} -c tbot.yaml`,
    );
  if (name === 'workload-identity-api')
    throw usageError(
      `mwi has no ${name} mode (Teleport's tbot ${cmd} ${name}): configure the service in tbot.yaml ` +
        `(services: [{type: ${name}, listen: unix:///PATH, selector: {name: NAME}}], docs/workload-api.md) ` +
        `and run tbot ${cmd} -c tbot.yaml`,
    );
  if (TELEPORT_ONLY.has(name))
    throw usageError(
      `mwi has no ${name} mode (Teleport's tbot ${cmd} ${name}): on the command line mwi writes identity ` +
        `outputs only (tbot ${cmd} identity --destination URI); the other outputs it has are written in tbot.yaml ` +
        '(docs/outputs.md)',
    );
  throw usageError(`unknown mode ${JSON.stringify(name)} (expected identity, id, ssh or legacy; see tbot --help)`);
}

/** The flags a mode takes: an identity output has one `--destination`, the legacy form `--destination-dir`. */
export function checkModeFlags(
  cmd: string,
  mode: StartMode,
  flags: { destination?: string | undefined; 'destination-dir'?: string | undefined },
): void {
  if (mode === 'identity') {
    if (flags['destination-dir'])
      throw usageError(`belongs to the legacy form (tbot ${cmd}); with a mode use --destination`, '--destination-dir');
    if (!flags.destination)
      throw usageError(
        `is required for tbot ${cmd} identity (file:///PATH, a path, memory://, or kubernetes-secret://NS/NAME)`,
        '--destination',
      );
  } else if (flags.destination) {
    throw usageError(
      `names an output's destination: tbot ${cmd} identity --destination URI (the legacy form takes --destination-dir)`,
      '--destination',
    );
  }
}

/** Go's strconv.ParseBool, which Teleport's boolean environment variables (TBOT_DEBUG) are read with. */
export function envBool(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '') return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw usageError(`expected true or false (or 1, 0) (got ${JSON.stringify(value)})`, name);
}
