// Preloaded into a tbot (`node --import`) to give it a host name with several addresses, as a DNS
// name in front of several Auth Service replicas has: MWI_TEST_HOSTS='name=ip1,ip2;other=ip3'.
// Every other name resolves as usual. Node's own connect tries each address of a name in turn.
import dns from 'node:dns';

type Callback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

const hosts = new Map(
  (process.env.MWI_TEST_HOSTS ?? '')
    .split(';')
    .filter(Boolean)
    .map((entry) => {
      const [name, ips] = entry.split('=');
      return [name!, ips!.split(',').map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))] as const;
    }),
);

const original = dns.lookup.bind(dns) as (...args: unknown[]) => void;
(dns as { lookup: unknown }).lookup = (host: string, options: unknown, callback?: Callback) => {
  const cb = (typeof options === 'function' ? options : callback) as Callback;
  const opts = (typeof options === 'object' && options !== null ? options : {}) as dns.LookupOptions;
  const all = hosts.get(host);
  if (!all) return original(host, options, callback);
  process.nextTick(() => (opts.all ? cb(null, all) : cb(null, all[0]!.address, all[0]!.family)));
};
