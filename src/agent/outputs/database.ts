import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { DB_IDENTIFIER } from '../../api/resources.js';
import { PATHS, type DatabaseCertRequest, type DatabaseCertResponse } from '../../api/wire.js';
import { generateKeys, type PemKeyPair } from '../../crypto/keys.js';
import { MwiError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import type { BotIdentity } from '../bot-identity.js';
import type { Destination, OutputFile } from '../destinations/destination.js';
import { destinationSchema } from '../destinations/index.js';
import { lifetimeFields, resolveLifetime, type Lifetime } from '../lifetime.js';
import type { ConfigOf } from '../registry.js';
import type { ServiceType } from '../service.js';
import { OUTPUT_KEY_LIFETIME_MS } from './identity.js';
import { outputService } from './output.js';
import { refuseOutputRoles } from './ssh-host.js';

const IDENT =
  'expected a database identifier: letters, digits, "_", ".", "@", "$", "-", at most 63 (no "/", "=", "," or spaces)';

const fields = {
  name: z.string().min(1).optional(),
  destination: destinationSchema,
  ...lifetimeFields,
  /** Teleport: the database service's name. mwi has no database resources: it names the database in the audit log. */
  service: z.string().min(1, 'expected the database service name').max(128),
  /** The database user: the certificate's subject CN. */
  username: z.string().regex(DB_IDENTIFIER, IDENT).optional(),
  /** The database to use; the roles' db_names must grant it. */
  database: z.string().regex(DB_IDENTIFIER, IDENT).optional(),
  /** Teleport's file formats; mwi writes `tls` (checked in resolve, to name the others). */
  format: z.string().optional(),
  roles: z.array(z.string()).optional(),
};

/** A validated `database` output. */
export type DatabaseOutputConfig = ConfigOf<typeof fields> & Lifetime & { username: string };

/** The files of Teleport's `tls` format: the client certificate, its key (SEC1 PEM), the CAs to verify the server. */
export function renderDatabaseFiles(keyPkcs8: string, res: DatabaseCertResponse): OutputFile[] {
  const keyPem = createPrivateKey(keyPkcs8).export({ type: 'sec1', format: 'pem' }).toString();
  return [
    { name: 'tls.crt', data: res.tls_cert, mode: 0o644 },
    { name: 'tls.key', data: keyPem, mode: 0o600 },
    { name: 'tls.cas', data: res.tls_ca_certs.join(''), mode: 0o644 },
  ];
}

/** Writes the `database` output: a client certificate for the database user, from the db-client CA. */
export class DatabaseOutput {
  private key: { pair: PemKeyPair; created: number } | undefined;

  constructor(
    readonly cfg: DatabaseOutputConfig,
    private readonly dest: Destination,
    private readonly botIdentity: BotIdentity,
    private readonly log: Logger,
  ) {}

  get name(): string {
    return this.cfg.name ?? `database (${this.dest.description})`;
  }

  async generate(): Promise<void> {
    // a client reads tls.crt and tls.key as two files: one key across renewals (as the identity output)
    if (!this.key || Date.now() - this.key.created >= OUTPUT_KEY_LIFETIME_MS) {
      this.key = { pair: await generateKeys('ec-p256'), created: Date.now() };
    }
    const req: DatabaseCertRequest = {
      public_key: this.key.pair.publicKeyPem,
      service: this.cfg.service,
      username: this.cfg.username,
      ...(this.cfg.database !== undefined ? { database: this.cfg.database } : {}),
      ttl_seconds: Math.round(this.cfg.credentialTtlMs / 1000),
    };
    const res = await this.botIdentity.call<DatabaseCertResponse>(PATHS.databaseCert, req);
    await this.dest.writeAll(renderDatabaseFiles(this.key.pair.privateKeyPem, res));
    this.log.info('wrote output', { output: this.name, username: this.cfg.username, expires: res.expires });
  }
}

/** Teleport's other formats of the database output, which mwi does not write. */
const OTHER_FORMATS: Readonly<Record<string, string>> = {
  '': "Teleport's default format writes its identity files for a Teleport proxy",
  mongo: 'mongo (one mongo.crt holding certificate and key, mongo.cas)',
  cockroach: 'cockroach (a cockroach/ directory of node.crt, node.key, ca.crt)',
};

/** `type: database`, Teleport's output type, in its `tls` format: a client certificate, renewed. */
export const databaseOutput: ServiceType<typeof fields, DatabaseOutputConfig> = {
  type: 'database',
  fields,
  resolve(raw, ctx) {
    refuseOutputRoles(raw.roles, ctx.where);
    const format = raw.format ?? '';
    if (format !== 'tls') {
      const what = OTHER_FORMATS[format] ?? `"${format}" is no format of Teleport's either`;
      throw new MwiError(
        'BAD_CONFIG',
        `mwi writes the database output in Teleport's tls format only (tls.crt, tls.key, tls.cas, for a client ` +
          `that connects to the database itself): set format: tls (${what})`,
        { field: `${ctx.where}.format` },
      );
    }
    if (raw.username === undefined)
      throw new MwiError(
        'BAD_CONFIG',
        'required: the database user the certificate names (its subject CN); Teleport can leave it to the ' +
          "database's default user, mwi has no database resources to take it from",
        { field: `${ctx.where}.username` },
      );
    return { ...raw, username: raw.username, ...resolveLifetime(raw, ctx.bot, ctx.where, ctx.oneshot) };
  },
  build(cfg, deps, name) {
    const output = new DatabaseOutput(cfg, deps.openDestination(cfg.destination), deps.botIdentity, deps.log);
    return outputService(name, deps, { label: `output ${output.name}`, cfg, generate: () => output.generate() });
  },
};
