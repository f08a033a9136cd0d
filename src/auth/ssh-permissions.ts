import type { Role } from '../api/resources.js';

/**
 * The OpenSSH certificate extensions a bot's roles grant, decided as Teleport decides them for
 * the same role options (role v7 `spec.options`):
 * - `permit-pty`: always.
 * - `permit-agent-forwarding`: some role sets `forward_agent: true` (default false).
 * - `permit-X11-forwarding`: some role sets `permit_x11_forwarding: true` (default false).
 * - `permit-port-forwarding`: local and remote forwarding both allowed. Allowed unless
 *   `ssh_port_forwarding.local.enabled` / `.remote.enabled: false` denies it in some role (a deny
 *   wins), or, with no role using `ssh_port_forwarding`, the legacy `port_forwarding: false` denies
 *   it and no role sets `port_forwarding: true`. An OpenSSH certificate cannot permit one
 *   direction only, so either deny removes the extension.
 * - `permit-user-rc`: never (Teleport has no option for it; ~/.ssh/rc runs code at every login).
 *
 * Sorted, as the certificate stores them. Deleted roles are not passed in: they grant nothing.
 */
export function sshExtensions(roles: readonly Role[]): string[] {
  const out = ['permit-pty'];
  const options = roles.map((r) => r.spec.options);
  if (options.some((o) => o.forward_agent === true)) out.push('permit-agent-forwarding');
  if (options.some((o) => o.permit_x11_forwarding === true)) out.push('permit-X11-forwarding');
  if (portForwarding(options)) out.push('permit-port-forwarding');
  return out.sort();
}

function portForwarding(options: ReadonlyArray<Role['spec']['options']>): boolean {
  let denyLocal = false;
  let denyRemote = false;
  let legacyDeny = false;
  let legacyAllow = false;
  let explicit = false;
  for (const o of options) {
    const cfg = o.ssh_port_forwarding;
    if (!cfg) {
      // the legacy flag counts only on a role without ssh_port_forwarding
      if (o.port_forwarding === true) legacyAllow = true;
      if (o.port_forwarding === false) legacyDeny = true;
      continue;
    }
    if (cfg.local?.enabled !== undefined) {
      explicit = true;
      if (!cfg.local.enabled) denyLocal = true;
    }
    if (cfg.remote?.enabled !== undefined) {
      explicit = true;
      if (!cfg.remote.enabled) denyRemote = true;
    }
  }
  if (legacyAllow) return true;
  if (legacyDeny && !explicit) return false;
  return !denyLocal && !denyRemote;
}
