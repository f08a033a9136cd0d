import { MwiError } from '../../errors.js';
import { jwtClient } from '../jwt/client.js';

/** The VM's identity token from the metadata server ($GCE_METADATA_HOST overrides the host). */
export async function gcpToken(audience: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const host = env.GCE_METADATA_HOST ?? 'metadata.google.internal';
  const url = `http://${host}/computeMetadata/v1/instance/service-accounts/default/identity?audience=${encodeURIComponent(audience)}&format=full`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { 'Metadata-Flavor': 'Google' }, signal: AbortSignal.timeout(5000) });
  } catch (cause) {
    throw new MwiError(
      'UNREACHABLE',
      `cannot reach the GCP metadata server at ${host} (is tbot running on a GCE VM?)`,
      { cause },
    );
  }
  if (!res.ok) throw new MwiError('UNREACHABLE', `the GCP metadata server answered HTTP ${res.status}`);
  return (await res.text()).trim();
}

export const gcpClient = jwtClient('gcp', (audience) => gcpToken(audience));
