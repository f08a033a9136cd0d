import { KubeApiError, type KubeClient } from './client.js';

/** The field manager of tbot's server-side applies (Teleport's). */
export const FIELD_MANAGER = 'tbot';

/** The content type of a server-side apply (JSON is YAML, so the body is JSON). */
export const APPLY_PATCH = 'application/apply-patch+yaml';

/** A core/v1 Secret as tbot reads and applies it; `data` values are base64. */
export interface KubeSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  type?: string;
  data?: Record<string, string>;
}

/** The Secrets of one namespace: read one, server-side apply one. */
export class SecretsApi {
  constructor(
    readonly client: KubeClient,
    readonly namespace: string,
  ) {}

  private path(name: string): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets/${encodeURIComponent(name)}`;
  }

  /** The Secret, or undefined when there is none (404). */
  async get(name: string): Promise<KubeSecret | undefined> {
    try {
      return await this.client.send<KubeSecret>({ method: 'GET', path: this.path(name) });
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  /**
   * Server-side apply as field manager `tbot`, forcing ownership of the fields it sets: creates
   * the Secret or updates it. A `metadata.resourceVersion` makes it conditional (409 when the
   * Secret changed since it was read). `dryRun`: checked and authorized, nothing stored.
   */
  apply(secret: KubeSecret, opts: { dryRun?: boolean } = {}): Promise<KubeSecret> {
    const query = `?fieldManager=${FIELD_MANAGER}&force=true${opts.dryRun ? '&dryRun=All' : ''}`;
    return this.client.send<KubeSecret>({
      method: 'PATCH',
      path: this.path(secret.metadata.name) + query,
      body: secret,
      contentType: APPLY_PATCH,
    });
  }
}
