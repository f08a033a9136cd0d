import { lockTarget } from '../../src/cli/tctl/locks.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { printPages } from '../../src/cli/tctl/format.js';

interface Item {
  name: string;
  n: number;
}
const toRow = { headers: ['Name', 'N'], row: (r: Item) => [r.name, String(r.n)] };

async function* paged<T>(pages: T[][]): AsyncGenerator<T[]> {
  for (const p of pages) yield p;
}

async function render(pages: Item[][], format: 'json' | 'yaml' | 'text'): Promise<string> {
  let text = '';
  await printPages(paged(pages), format, toRow, async (t) => void (text += t));
  return text;
}

it('printPages: JSON written page by page is byte for byte JSON.stringify(all, null, 2)', async () => {
  const a = { name: 'a', n: 1, nested: { list: [1, 2, { deep: 'x\ny' }], empty: {}, none: [] } };
  const b = { name: 'b', n: 2, s: 'quote " and \\ backslash' };
  const c = { name: 'c', n: 3 };
  for (const pages of [[], [[]], [[a]], [[a, b], [c]], [[a], [], [b, c]]]) {
    const all = pages.flat();
    assert.equal(await render(pages, 'json'), `${JSON.stringify(all, null, 2)}\n`, JSON.stringify(pages));
    assert.deepEqual(JSON.parse(await render(pages, 'json')), all);
  }
});

it('printPages: YAML documents and a table sized over every page', async () => {
  const pages = [[{ name: 'a', n: 1 }], [{ name: 'longer-name', n: 22 }]];
  assert.equal(
    await render(pages, 'yaml'),
    pages
      .flat()
      .map((i) => stringify(i))
      .join('---\n'),
  );
  const lines = (await render(pages, 'text')).trimEnd().split('\n');
  assert.equal(lines.length, 4, 'header, rule, two rows');
  assert.match(lines.at(-1)!, /^longer-name\s+22$/);
  assert.match(lines.at(-2)!, /^a {11}\s*1$/);
});

describe('tctl locks ls target column', () => {
  it('names every kind of target, join_token locks included (the Auth Service creates those itself)', () => {
    assert.equal(lockTarget({ user: 'bot-robot' }), 'user:bot-robot');
    assert.equal(lockTarget({ bot_instance_id: 'i-1' }), 'bot_instance_id:i-1');
    assert.equal(lockTarget({ join_token: 'bk-real' }), 'join_token:bk-real');
  });
});
