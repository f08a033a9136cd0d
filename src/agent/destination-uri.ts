import { MwiError } from '../errors.js';

/** A destination (or storage) as a tbot flag names it: the tbot.yaml block it stands for. */
export type DestinationFromUri =
  | { type: 'directory'; path: string }
  | { type: 'memory' }
  | { type: 'kubernetes_secret'; name: string; namespace?: string };

/** `scheme://rest`, Teleport's form for `--destination` and `--storage`. */
const WITH_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s;

/**
 * Reads a tbot destination URI as Teleport does: `file:///path` or a bare path is a directory,
 * `memory://` is memory, `kubernetes-secret://NAMESPACE/NAME` a Kubernetes Secret (no namespace,
 * `kubernetes-secret:///NAME`: the pod's). A file URI names a path on this host (no host part);
 * other schemes are refused naming `field`.
 *
 * @example destinationFromUri('file:///var/lib/tbot', '--storage') // { type: 'directory', path: '/var/lib/tbot' }
 */
export function destinationFromUri(uri: string, field: string): DestinationFromUri {
  const bad = (message: string) => new MwiError('BAD_CONFIG', message, { field });
  if (!uri) throw bad('expected file:///PATH, a path, memory://, or kubernetes-secret://NAMESPACE/NAME');
  const m = WITH_SCHEME.exec(uri);
  if (!m) return { type: 'directory', path: uri };
  const [, scheme, rest] = m as unknown as [string, string, string];
  switch (scheme.toLowerCase()) {
    case 'file': {
      // file:///abs/path: the part before the third slash is a host, and there is no other host
      if (!rest.startsWith('/'))
        throw bad(`a file URI names a path on this host: file:///PATH (got ${JSON.stringify(uri)})`);
      try {
        return { type: 'directory', path: decodeURIComponent(rest) };
      } catch {
        throw bad(`${JSON.stringify(uri)} holds a % that starts no %XX escape`);
      }
    }
    case 'memory':
      if (rest !== '' && rest !== '/') throw bad('memory:// takes no host or path');
      return { type: 'memory' };
    case 'kubernetes-secret': {
      // Teleport's form: the host part is the namespace, the path the Secret's name
      const slash = rest.indexOf('/');
      const namespace = slash < 0 ? rest : rest.slice(0, slash);
      const name = slash < 0 ? '' : rest.slice(slash + 1);
      if (!name || name.includes('/'))
        throw bad(
          `expected kubernetes-secret://NAMESPACE/NAME or kubernetes-secret:///NAME (got ${JSON.stringify(uri)})`,
        );
      return { type: 'kubernetes_secret', name, ...(namespace ? { namespace } : {}) };
    }
    default:
      throw bad(
        `unknown scheme ${JSON.stringify(`${scheme}://`)} (expected file:///PATH, a path, memory://, or ` +
          'kubernetes-secret://NAMESPACE/NAME)',
      );
  }
}
