// A stand-in for a node's kubelet, for the Workload API's kubernetes attestor. What it reproduces
// of a real kubelet: GET /pods on an HTTPS port with a serving certificate from its own CA (the
// kubelet's self-signed or cluster-CA-signed certificate), bearer-token authentication (401
// without the token, as a kubelet with webhook authn answers an anonymous caller), and a PodList
// whose items carry metadata (name, namespace, uid, labels), spec.serviceAccountName and
// status.containerStatuses[].containerID in the runtime's `containerd://<64 hex>` form. It does not
// reproduce authorization (SubjectAccessReview), the read-only port, or any other path.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makePublicPki } from './public-pki.js';

export interface FakeKubelet {
  port: number;
  /** The CA file that verifies the kubelet's certificate (attestors.kubernetes.kubelet.ca_path). */
  caPath: string;
  /** A file holding the token it accepts (kubelet.token_path). */
  tokenPath: string;
  /** Requests it answered, with their Authorization header. */
  requests: { path: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

/** A pod as the kubelet lists it, with one running container `containerId`. */
export function pod(o: {
  name: string;
  namespace: string;
  uid: string;
  serviceAccount: string;
  containerId: string;
  labels?: Record<string, string>;
}): object {
  return {
    metadata: { name: o.name, namespace: o.namespace, uid: o.uid, labels: o.labels ?? {} },
    spec: { serviceAccountName: o.serviceAccount, containers: [{ name: 'app', image: 'example/app:1' }] },
    status: {
      phase: 'Running',
      containerStatuses: [{ name: 'app', ready: true, containerID: `containerd://${o.containerId}` }],
    },
  };
}

/** Starts the stand-in on 127.0.0.1 (certificate for localhost and 127.0.0.1), serving `pods`. */
export async function startFakeKubelet(dir: string, pods: object[]): Promise<FakeKubelet> {
  const pki = await makePublicPki(dir);
  const { cert, key } = await pki.issue('kubelet', 'DNS:localhost,IP:127.0.0.1');
  const token = 'kubelet-test-token';
  const tokenPath = join(dir, 'token');
  writeFileSync(tokenPath, `${token}\n`);
  const requests: FakeKubelet['requests'] = [];
  const server: Server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
    requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('Unauthorized');
      return;
    }
    if (req.method !== 'GET' || req.url !== '/pods') {
      res.writeHead(404).end('404 page not found');
      return;
    }
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: pods }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    caPath: pki.root,
    tokenPath,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
