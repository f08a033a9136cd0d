import { z } from 'zod';

const AUDIT = 'the audit log is always in the same database (mwi_events), kept for audit.retention_period';
const FEED =
  "mwi's change feed is a change-log table each replica polls over its ordinary connections: the database needs " +
  'no wal_level=logical, no wal2json and no role with REPLICATION';
const CLOUD_AUTH =
  'cloud IAM sign-in (Azure AD, GCP Cloud SQL) is not supported: use a client certificate (sslcert, sslkey), a ' +
  'passfile or PGPASSWORD';
const EXPIRY = 'expired items are always removed, every 10 minutes in batches, by one replica at a time';

/**
 * The other keys of Teleport's teleport.storage for PostgreSQL (lib/backend/pgbk and the storage
 * section's audit URIs), each refused with what mwi does instead: a Teleport habit that would be
 * silently ignored otherwise.
 */
const REFUSED: Record<string, string> = {
  audit_events_uri: `not supported: ${AUDIT}`,
  audit_sessions_uri: 'not supported: mwi records no sessions',
  change_feed_conn_string: `not supported: ${FEED}`,
  change_feed_poll_interval: `not supported: ${FEED} every 100 ms`,
  change_feed_batch_size: `not supported: ${FEED}`,
  auth_mode: `not supported: ${CLOUD_AUTH}`,
  azure_client_id: `not supported: ${CLOUD_AUTH}`,
  gcp_connection_name: `not supported: ${CLOUD_AUTH}`,
  gcp_ip_type: `not supported: ${CLOUD_AUTH}`,
  disable_expiry: `not supported: ${EXPIRY}`,
  expiry_interval: `not supported: ${EXPIRY}`,
  expiry_batch_size: `not supported: ${EXPIRY}`,
};

/** Zod fields for mwi.yaml's `storage: {type: postgresql}`: Teleport's other keys, each refused with its reason. */
export const TELEPORT_STORAGE_REFUSED = Object.fromEntries(
  Object.entries(REFUSED).map(([key, message]) => [key, z.undefined({ errorMap: () => ({ message }) })]),
);
