import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { boundedRequest } from '../../src/util/bounded-request.js';

/** The join methods' bounded exchange (ec2 aws-api, iam sts, azure arm): time and size limits. */
describe('boundedRequest', () => {
  let server: Server;
  let port = 0;
  const timers: NodeJS.Timeout[] = [];
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/echo') {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => res.writeHead(201).end(`got ${body}`));
      } else if (req.url === '/huge') res.end('x'.repeat(5000));
      else if (req.url === '/silent') res.writeHead(200).write('a');
      else if (req.url === '/drip') {
        res.writeHead(200);
        const t = setInterval(() => res.write('.'), 50);
        timers.push(t);
        res.on('close', () => clearInterval(t));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    for (const t of timers) clearInterval(t);
    server.closeAllConnections();
    server.close();
  });

  const ask = (path: string, bounds: Parameters<typeof boundedRequest>[3], body?: string) =>
    boundedRequest(request, { host: '127.0.0.1', port, path, method: 'POST', agent: false }, body, bounds);

  it('sends the body and reads the status and the answer', async () => {
    const a = await ask('/echo', { idleMs: 2000, totalMs: 2000, maxBytes: 100, tooLong: 'too long' }, 'hi');
    assert.equal(a.status, 201);
    assert.equal(a.body.toString(), 'got hi');
  });

  it('an answer longer than maxBytes fails with its message', async () => {
    await assert.rejects(
      ask('/huge', { totalMs: 2000, maxBytes: 1000, tooLong: 'answer too long' }),
      /answer too long/,
    );
  });

  it('a silence longer than idleMs fails', async () => {
    await assert.rejects(ask('/silent', { idleMs: 200, maxBytes: 100, tooLong: '' }), /no answer within 0.2s/);
  });

  it('a slow drip is cut off by totalMs, though it is never silent for idleMs', async () => {
    await assert.rejects(
      ask('/drip', { idleMs: 1000, totalMs: 300, maxBytes: 100_000, tooLong: '' }),
      /no answer within 0.3s/,
    );
  });
});
