import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { MwiError } from '../../errors.js';
import { lifetimeFields, resolveLifetime, type Lifetime } from '../lifetime.js';
import type { ConfigOf } from '../registry.js';
import type { Health } from '../runtime.js';
import type { ServiceType } from '../service.js';
import { CachedPodSource, KubeletClient } from './attest/kubernetes.js';
import { DEFAULT_BINARY_HASH_MAX_BYTES } from './attest/unix.js';
import { botIssuer } from './bot-issuer.js';
import type { Selector } from './issuer.js';
import { WorkloadApiServer } from './server.js';
import { checkSocketPath, DEFAULT_SOCKET_MODE } from './socket.js';

/** How often tbot asks whether the trust bundle changed: a rotation reaches workloads within this. */
export const BUNDLE_POLL_MS = 5000;

const selector = z.union(
  [
    z.object({ name: z.string().min(1) }).strict(),
    z.object({ labels: z.record(z.string(), z.array(z.string()).min(1)) }).strict(),
  ],
  { errorMap: () => ({ message: 'expected { name: NAME } or { labels: { KEY: [VALUE, ...] } }' }) },
);

const port = z.number().int().min(1).max(65535);

/** Teleport's attestors; the ones mwi does not have are named so, not "unknown key". */
const attestors = z
  .object({
    unix: z
      .object({ binary_hash_max_size_bytes: z.number().int().min(-1).optional() })
      .strict()
      .optional(),
    kubernetes: z
      .object({
        enabled: z.boolean().default(false),
        kubelet: z
          .object({
            read_only_port: port.optional(),
            secure_port: port.optional(),
            token_path: z.string().min(1).optional(),
            ca_path: z.string().min(1).optional(),
            skip_verify: z.boolean().optional(),
            anonymous: z.boolean().optional(),
          })
          .strict()
          .default({}),
      })
      .strict()
      .optional(),
    podman: z.unknown().optional(),
    docker: z.unknown().optional(),
    systemd: z.unknown().optional(),
    sigstore: z.unknown().optional(),
  })
  .strict();

const fields = {
  name: z.string().min(1).optional(),
  /** Teleport: `unix:///path` (or `tcp://`, which mwi refuses: no peer credentials over TCP). */
  listen: z.string().min(1),
  selector,
  attestors: attestors.default({}),
  /** mwi's: the socket's mode, octal ("0660" with a group-owned directory to restrict who may ask). */
  socket_mode: z
    .string()
    .regex(/^0?[0-7]{3}$/, 'expected an octal mode such as "0666" or "0660"')
    .optional(),
  ...lifetimeFields,
  roles: z.array(z.string()).optional(),
};

export type WorkloadApiConfig = ConfigOf<typeof fields> &
  Lifetime & { socketPath: string; socketMode: number; selector: Selector };

/** `type: workload-identity-api`: the SPIFFE Workload API on a unix socket, with workload attestation. */
export const workloadIdentityApiService: ServiceType<typeof fields, WorkloadApiConfig> = {
  type: 'workload-identity-api',
  fields,
  resolve(raw, ctx) {
    const fail = (field: string, message: string): never => {
      throw new MwiError('BAD_CONFIG', message, { field: `${ctx.where}.${field}` });
    };
    if (raw.roles?.length)
      fail('roles', "not supported (as in Teleport v19): services use all of the bot's roles; remove roles");
    if (ctx.oneshot)
      fail('type', 'a one-shot run serves nothing: the Workload API is a long-running service; remove oneshot');
    if (raw.listen.startsWith('tcp://'))
      fail(
        'listen',
        'mwi serves the Workload API on a unix socket only (unix:///path): workload attestation reads the ' +
          "caller's pid, uid and gid from the socket (SO_PEERCRED), which TCP cannot give; Teleport's tcp:// " +
          'listener issues to whoever connects',
      );
    if (!raw.listen.startsWith('unix://')) fail('listen', 'expected unix:///absolute/path');
    const socketPath = raw.listen.slice('unix://'.length);
    if (!isAbsolute(socketPath)) fail('listen', 'expected unix:///absolute/path (three slashes)');
    for (const name of ['podman', 'docker', 'systemd', 'sigstore'] as const)
      if (raw.attestors[name] !== undefined)
        fail(
          `attestors.${name}`,
          `mwi has no ${name} attestor (it has unix, always on, and kubernetes); remove attestors.${name}`,
        );
    const kubelet = raw.attestors.kubernetes?.kubelet;
    if (kubelet?.read_only_port && kubelet.secure_port)
      fail('attestors.kubernetes.kubelet', 'read_only_port and secure_port exclude each other (as in Teleport)');
    return {
      ...raw,
      ...resolveLifetime(raw, ctx.bot, ctx.where, ctx.oneshot),
      socketPath,
      socketMode: raw.socket_mode ? parseInt(raw.socket_mode, 8) : DEFAULT_SOCKET_MODE,
    };
  },
  async checkCluster(cfg, ctx) {
    // before a first join spends its token: a socket tbot could not listen on is an error now
    await checkSocketPath(cfg.socketPath, `${ctx.where}.listen`);
  },
  build(cfg, deps, name) {
    const k8s = cfg.attestors.kubernetes;
    const server = new WorkloadApiServer({
      selector: cfg.selector,
      ttlMs: cfg.credentialTtlMs,
      unix: { binaryHashMaxSizeBytes: cfg.attestors.unix?.binary_hash_max_size_bytes || DEFAULT_BINARY_HASH_MAX_BYTES },
      kubernetes: k8s?.enabled ? new CachedPodSource(new KubeletClient(k8s.kubelet)) : undefined,
      issuer: botIssuer(deps.botIdentity),
      log: deps.log,
    });
    const health: Health = { status: 'initializing', reason: 'opening the socket' };
    return {
      name,
      health,
      trigger: () => void server.refreshBundle().catch(() => {}),
      async run(signal) {
        const field = `${name}.listen`;
        try {
          await server.listen(cfg.socketPath, cfg.socketMode, field);
        } catch (err) {
          health.status = 'unhealthy';
          health.reason = err instanceof Error ? err.message : String(err);
          deps.log.error('workload-identity-api: cannot listen', { socket: cfg.socketPath, error: health.reason });
          throw err;
        }
        deps.log.info('workload-identity-api: listening', {
          socket: cfg.socketPath,
          mode: cfg.socketMode.toString(8),
        });
        health.status = 'healthy';
        delete health.reason;
        health.lastSuccess = Date.now();
        // the trust bundle, watched for rotations (streams renew when its revision changes)
        while (!signal.aborted) {
          try {
            await server.refreshBundle();
            health.status = 'healthy';
            health.lastSuccess = Date.now();
            delete health.reason;
          } catch (err) {
            health.status = 'unhealthy';
            health.reason = `trust bundle: ${err instanceof Error ? err.message : String(err)}`;
          }
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, BUNDLE_POLL_MS);
            signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
          });
        }
        await server.close();
      },
    };
  },
};
