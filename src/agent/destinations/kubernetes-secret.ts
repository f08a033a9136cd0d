import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { MwiError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import { KubeApiError, KubeClient, type KubeClientOptions } from '../kube/client.js';
import { resolveConnection, type KubeConnection } from '../kube/connection.js';
import { SecretsApi, type KubeSecret } from '../kube/secrets.js';
import type { ConfigOf } from '../registry.js';
import { Mutex } from '../runtime.js';
import type { Destination, DestinationType, OpenContext, OutputFile } from './destination.js';
import { conflictError, secretError, type SecretRequest } from './kubernetes-secret-errors.js';

/** Teleport's: the namespace when tbot.yaml names none (the Deployment sets it from the downward API). */
export const NAMESPACE_ENV = 'POD_NAMESPACE';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** A key of a Secret's data: what Kubernetes accepts (every file name of mwi's outputs is one). */
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;

/** `prefix/name` or `name`, as Kubernetes checks label keys. */
function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const [prefix, name] = slash < 0 ? [undefined, key] : [key.slice(0, slash), key.slice(slash + 1)];
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

const fields = {
  name: z.string().max(253).regex(DNS_SUBDOMAIN, 'expected a Secret name: lower-case letters, digits, "-" and "."'),
  namespace: z
    .string()
    .max(63)
    .regex(DNS_LABEL, 'expected a namespace name: lower-case letters, digits and "-"')
    .optional(),
  labels: z
    .record(
      z.string().refine(isLabelKey, 'expected a label key: NAME or PREFIX/NAME (NAME: up to 63 letters, digits, -_.)'),
      z
        .string({ invalid_type_error: 'expected a string (quote numbers and booleans)' })
        .max(63)
        .refine((v) => v === '' || LABEL_NAME.test(v), 'expected a label value: up to 63 letters, digits, -_.'),
    )
    .optional(),
  kubeconfig_path: z.string().min(1).optional(),
  kubeconfig_context: z.string().min(1).optional(),
};

/** A validated `type: kubernetes_secret` destination of tbot.yaml. */
export type KubernetesSecretConfig = ConfigOf<typeof fields>;

/** Teleport's URI for it: `kubernetes-secret://NAMESPACE/NAME` (no namespace: the pod's). */
export function secretUri(cfg: { name: string; namespace?: string | undefined }): string {
  return `kubernetes-secret://${cfg.namespace ?? ''}/${cfg.name}`;
}

/** How many times a write is tried when the Secret changed between its read and its apply (409). */
const WRITE_ATTEMPTS = 5;

/**
 * Keeps a file set in one Kubernetes Secret, one key per file (base64, as every Secret's data).
 * Each write is one server-side apply (field manager `tbot`) of the whole set: a reader of the
 * Secret sees the old set or the new one, and keys tbot wrote before and no longer writes go
 * with it. The apply carries the resourceVersion tbot read, so a Secret changed meanwhile is
 * read again and the write retried (409 Conflict, with backoff); a deleted Secret is created
 * again. There is no lock: one tbot per Secret (a Deployment with one replica and strategy
 * Recreate). File modes do not apply; nothing of the data is ever logged.
 */
export class KubernetesSecretDestination implements Destination {
  readonly description: string;
  private readonly api: SecretsApi;
  private readonly mutex = new Mutex();
  /** Whether this process saw the Secret exist: its absence at a later write means someone deleted it. */
  private seen = false;

  constructor(
    readonly cfg: KubernetesSecretConfig,
    readonly conn: KubeConnection,
    readonly namespace: string,
    private readonly field: string,
    private readonly log?: Logger,
    client: KubeClientOptions = {},
  ) {
    this.api = new SecretsApi(new KubeClient(conn, client), namespace);
    this.description = `Kubernetes Secret ${namespace}/${cfg.name}`;
  }

  private request(verb: string): SecretRequest {
    return {
      verb,
      name: this.cfg.name,
      namespace: this.namespace,
      server: this.conn.server,
      source: this.conn.source,
      field: this.field,
    };
  }

  private async get(): Promise<KubeSecret | undefined> {
    try {
      const s = await this.api.get(this.cfg.name);
      if (s) this.seen = true;
      return s;
    } catch (err) {
      throw secretError(err, this.request('get'));
    }
  }

  /** The Secret tbot applies: its name, labels (when set), type and, for a write, data and the resourceVersion read. */
  private secret(data?: Record<string, string>, resourceVersion?: string): KubeSecret {
    const labels = this.cfg.labels && Object.keys(this.cfg.labels).length > 0 ? { labels: this.cfg.labels } : {};
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: this.cfg.name,
        namespace: this.namespace,
        ...(resourceVersion ? { resourceVersion } : {}),
        ...labels,
      },
      type: 'Opaque',
      ...(data ? { data } : {}),
    };
  }

  /**
   * At start, before a join can spend a token: reads the Secret and applies it with `dryRun=All`,
   * which the API server authorizes as a real write (patch, and create when it is absent) but
   * does not store. A refusal stops tbot naming the verb, the Secret and the Role rule.
   */
  async prepare(): Promise<void> {
    const existing = await this.get();
    try {
      await this.api.apply(this.secret(), { dryRun: true });
    } catch (err) {
      throw secretError(err, this.request(existing ? 'patch' : 'create'));
    }
  }

  async read(name: string): Promise<string | undefined> {
    const s = await this.mutex.run(() => this.get());
    const value = s?.data?.[name];
    return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
  }

  async writeAll(files: OutputFile[]): Promise<void> {
    const data: Record<string, string> = {};
    for (const f of files) {
      if (!DATA_KEY.test(f.name) || f.name.length > 253) throw new TypeError(`invalid Secret key ${f.name}`);
      data[f.name] = Buffer.from(f.data, 'utf8').toString('base64');
    }
    await this.mutex.run(async () => {
      for (let attempt = 1; ; attempt++) {
        const seenBefore = this.seen;
        const current = await this.get();
        if (!current && seenBefore)
          this.log?.warn('the Kubernetes Secret is gone (deleted?); creating it again', {
            secret: this.cfg.name,
            namespace: this.namespace,
          });
        try {
          await this.api.apply(this.secret(data, current?.metadata.resourceVersion));
          this.seen = true;
          return;
        } catch (err) {
          // 409: changed since it was read; 404 with a resourceVersion: deleted since it was read
          const raced = err instanceof KubeApiError && (err.status === 409 || (err.status === 404 && current));
          if (!raced) throw secretError(err, this.request(current ? 'patch' : 'create'));
          if (attempt >= WRITE_ATTEMPTS) throw conflictError(this.request('patch'), attempt);
          this.log?.info('the Kubernetes Secret changed while tbot wrote it; reading it again', {
            secret: this.cfg.name,
            namespace: this.namespace,
            attempt,
          });
          await sleep(100 * 2 ** (attempt - 1) * (0.5 + Math.random() / 2));
        }
      }
    });
  }
}

/** The namespace: the key, else $POD_NAMESPACE (Teleport's two), else the kubeconfig context's or the pod's. */
function namespaceOf(cfg: KubernetesSecretConfig, conn: KubeConnection, field: string, env: NodeJS.ProcessEnv): string {
  const ns = cfg.namespace ?? (env[NAMESPACE_ENV] || undefined) ?? conn.namespace;
  if (ns && DNS_LABEL.test(ns)) return ns;
  if (ns)
    throw new MwiError('BAD_CONFIG', `${JSON.stringify(ns)} (from $${NAMESPACE_ENV}) is not a namespace name`, {
      field: `${field}.namespace`,
    });
  throw new MwiError(
    'BAD_CONFIG',
    `no namespace for the Secret "${cfg.name}": set namespace, or $${NAMESPACE_ENV} (a Deployment sets it from ` +
      'the downward API: valueFrom.fieldRef.fieldPath: metadata.namespace, as deploy/kubernetes does)',
    { field: `${field}.namespace` },
  );
}

/**
 * `type: kubernetes_secret`, Teleport's: `name` (required), `namespace` (default $POD_NAMESPACE),
 * `labels`, `kubeconfig_path` (default $KUBECONFIG, else the pod's own service account),
 * `kubeconfig_context`. Opening one reads its connection's files (not the network): a missing
 * kubeconfig or token stops tbot at start.
 */
export const kubernetesSecretDestination: DestinationType<typeof fields> = {
  type: 'kubernetes_secret',
  fields,
  build(cfg, ctx: OpenContext = {}) {
    // the caller names the directory's key (`storage.path`); a Secret's errors name the block
    const field = (ctx.field ?? 'destination').replace(/\.path$/, '');
    const conn = resolveConnection(
      { kubeconfigPath: cfg.kubeconfig_path, kubeconfigContext: cfg.kubeconfig_context, field },
      process.env,
    );
    const namespace = namespaceOf(cfg, conn, field, process.env);
    // tbot's stop cuts a request the API server leaves hanging (after a short grace)
    return new KubernetesSecretDestination(cfg, conn, namespace, field, ctx.log, { signal: ctx.signal });
  },
  paths: () => [],
  targets(cfg) {
    const secret = `the Kubernetes Secret ${cfg.namespace ?? `$${NAMESPACE_ENV}`}/${cfg.name}`;
    if (!cfg.kubeconfig_path && !cfg.kubeconfig_context) return [secret];
    const context = cfg.kubeconfig_context ? ` context ${cfg.kubeconfig_context}` : '';
    return [`${secret} (kubeconfig ${cfg.kubeconfig_path ?? '$KUBECONFIG'}${context})`];
  },
};
