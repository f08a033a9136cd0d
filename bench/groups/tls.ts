// The TLS ceiling: new mTLS connections to a bare HTTPS server that does nothing else.
import { ApiClient } from '../../src/api/client.js';
import { PATHS } from '../../src/api/wire.js';
import { processCpuMs } from '../cluster.js';
import { cryptoBound, OPS } from '../crypto.js';
import { levels, type Bench } from '../measure.js';
import { startTlsPeer } from '../tls-peer.js';

export async function handshakes(b: Bench & { rates: Record<string, number> }): Promise<void> {
  const peer = await startTlsPeer();
  try {
    const name = 'bare TLS 1.3 mTLS handshake + empty answer (Node https server, no mwi code)';
    await levels(b, { cpuMs: () => processCpuMs(peer.pid) }, name, cryptoBound(b.rates, OPS.handshake), async () => ({
      task: async () => {
        const api = new ApiClient({ addrs: [peer.addr], tls: peer.client });
        try {
          await api.call('POST', PATHS.renew, {});
        } finally {
          api.close();
        }
      },
    }));
  } finally {
    peer.stop();
  }
}
