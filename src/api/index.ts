/**
 * The package's programmatic entry (package.json `exports`): what a program needs to speak to an
 * Auth Service the way tctl and tbot do. The CLIs are the `bin` entries.
 */
export { AdminClient, type PageOptions } from './admin-client.js';
export { ApiClient, discoverCA, parseAddr, type ApiClientOptions, type ClientTLS } from './client.js';
export * from './resources.js';
export * from './wire.js';
export { ERROR_CODES, isMwiError, MwiError, type ErrorCode } from '../errors.js';
export { VERSION } from '../version.js';
