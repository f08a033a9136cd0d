import { FIPS_REGIONS, GOVCLOUD, STS_REGIONS, stsFipsHost, stsHost } from './wire.js';

/**
 * The STS endpoints an iam join's request may name: the Auth Service sends the request there, so
 * the host decides who answers "who signed this". Exact host names only (no port, no scheme).
 */

/** The default allow-list: the global endpoint and every region's, China's, GovCloud's and the FIPS ones. */
export const DEFAULT_STS_HOSTS: readonly string[] = Object.freeze([
  stsHost(undefined),
  ...STS_REGIONS.map(stsHost),
  ...FIPS_REGIONS.map((r) => stsFipsHost(r)!),
]);

/** Whether `host` is a FIPS endpoint (what `iam.fips: true` allows). */
export function isFipsHost(host: string): boolean {
  return host.startsWith('sts-fips.') || GOVCLOUD.some((r) => host === stsHost(r));
}
