// The queue's in-memory catalog against the on-disk filter, as generated cases: random envelopes
// (odd addresses: upper case, no "@", several "@", non-ASCII, lone surrogates), states, holds and
// removals; random filters. Also the packed id table against a Map, through mass deletes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Catalog } from '../../src/queue/catalog.ts';
import { IdTable } from '../../src/queue/idtable.ts';
import { compileFilter, type QueueFilter } from '../../src/queue/filter.ts';
import type { Envelope, RecipientState } from '../../src/queue/envelope.ts';
import { newQueueId } from '../../src/core/ids.ts';

const locals = ['bulk', 'Bulk', 'BULK', 'alice', 'x', '', 'İnci', 'ΟΔΟΣ', 'Kelvin\u212a', 'a@b', '\ud800lone', 'postmaster', 'user.name+tag'];
const domains = ['spam.example', 'SPAM.Example', 'example.net', 'sub.spam.example', 'ΣΑΣ.example', 'xn--d1acufc.example'];
const address = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...locals), fc.constantFrom(...domains)).map(([l, d]) => `${l}@${d}`) },
  { weight: 1, arbitrary: fc.constantFrom('', 'postmaster', 'Postmaster', 'İ') },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);
const status = fc.constantFrom<RecipientState['status']>('pending', 'deferred', 'delivered', 'bounced');
const message = fc.record({
  mailFrom: address,
  ageMin: fc.integer({ min: 0, max: 5000 }),
  recipients: fc.array(fc.record({ address, mailbox: fc.option(address, { nil: undefined }), status }), { minLength: 1, maxLength: 4 }),
  held: fc.boolean(),
  removed: fc.boolean(),
});
const pattern = fc.oneof(
  address,
  fc.constantFrom(...domains).map((d) => `@${d.toUpperCase()}`),
  fc.constantFrom('<>', '<BULK@spam.example>', ' bulk@SPAM.example '),
);
const filter: fc.Arbitrary<QueueFilter> = fc.record(
  {
    sender: pattern,
    recipient: pattern,
    domain: fc.oneof(fc.constantFrom(...domains), fc.constantFrom('@example.net', 'EXAMPLE.NET.', '')),
    olderThanMs: fc.integer({ min: 0, max: 6000 }).map((m) => m * 60_000),
    state: fc.constantFrom('held' as const, 'deferred' as const, 'pending' as const),
  },
  { requiredKeys: [] },
);

test('catalog selections equal the on-disk filter on generated queues', async () => {
  const now = Date.now();
  await fc.assert(
    fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 40 }), fc.array(filter, { minLength: 1, maxLength: 8 }), async (msgs, filters) => {
      const cat = new Catalog();
      const kept: Array<{ env: Envelope; states: RecipientState[]; held: boolean }> = [];
      for (const m of msgs) {
        const id = newQueueId();
        const env: Envelope = {
          id,
          receivedAt: now - m.ageMin * 60_000,
          mailFrom: m.mailFrom,
          recipients: m.recipients.map((r) => ({ address: r.address, ...(r.mailbox !== undefined ? { mailbox: r.mailbox } : {}), transport: 'remote' as const })),
          client: { address: '192.0.2.1', listener: 'mx', sessionId: 's' },
          smtputf8: true,
          body: '8BITMIME',
          size: 1,
        };
        const slot = cat.open(id);
        // Indexed as committed (all pending), then the states arrive as state records.
        cat.index(slot, env, [], m.held);
        const states: RecipientState[] = m.recipients.map((r) => ({ status: r.status, attempts: 1 }));
        cat.applyStates(slot, states.map((state, index) => ({ index, state })));
        if (m.removed) {
          cat.unindex(slot);
          cat.settle(slot);
        } else {
          kept.push({ env, states, held: m.held });
        }
      }
      for (const f of filters) {
        for (const areas of [['queue'], ['hold'], ['queue', 'hold']]) {
          const match = compileFilter(f, now);
          const expected = kept.filter((k) => areas.includes(k.held ? 'hold' : 'queue') && match(k.env, k.states, k.held)).map((k) => `${k.env.id} ${k.env.mailFrom}`);
          const got = (await cat.select(f, areas, now)).map((s) => `${s.id} ${s.from}`);
          assert.deepEqual(got.sort(), expected.sort(), JSON.stringify(f));
        }
      }
    }),
    { numRuns: 150 },
  );
});

test('the address store compacts after mass removal and the catalog still answers the same', async () => {
  const cat = new Catalog();
  const now = Date.now();
  const ids: string[] = [];
  for (let i = 0; i < 30_000; i++) {
    const id = newQueueId();
    ids.push(id);
    const env: Envelope = {
      id,
      receivedAt: now,
      mailFrom: i % 3 === 0 ? `keep${i}@Keep.example` : `drop${i}-${'x'.repeat(20)}@drop.example`,
      recipients: [{ address: `r${i}@dest${i % 7}.example`, mailbox: i % 2 ? `box${i}@local.example` : `r${i}@dest${i % 7}.example`, transport: 'local' }],
      client: { address: '192.0.2.1', listener: 'mx', sessionId: 's' },
      smtputf8: false,
      body: '8BITMIME',
      size: 1,
    };
    cat.index(cat.open(id), env, [], false);
  }
  ids.forEach((id, i) => {
    if (i % 3 === 0) return;
    const slot = cat.slot(id)!;
    cat.unindex(slot);
    cat.settle(slot);
  });
  assert.equal(cat.indexed, 10_000);
  assert.equal(cat.size, 10_000);
  const kept = await cat.select({ sender: '@keep.example' }, ['queue']);
  assert.equal(kept.length, 10_000);
  assert.deepEqual(kept.slice(0, 2).map((s) => [s.id, s.from]), [[ids[0], 'keep0@Keep.example'], [ids[3], 'keep3@Keep.example']]);
  assert.deepEqual((await cat.select({ recipient: 'box3@local.example' }, ['queue'])).map((s) => s.id), [ids[3]]);
  assert.deepEqual((await cat.select({ recipient: 'R6@DEST6.example' }, ['queue'])).map((s) => s.id), [ids[6]]);
  assert.equal((await cat.select({ sender: '@drop.example' }, ['queue'])).length, 0);
  // Rows and the id table are reused.
  const again = newQueueId();
  const slot = cat.open(again);
  assert.ok(slot < 30_000, `row ${slot} reused`);
  assert.equal(cat.id(slot), again);
});

test('the packed id table agrees with a Map through inserts and mass deletes', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(3000)), { minLength: 1, maxLength: 4000 }), (ops) => {
      const table = new IdTable();
      const model = new Map<string, number>();
      const rowIds = new Map<number, string>();
      const pool = Array.from({ length: 3001 }, (_, i) => (i % 500 === 7 ? `other-${i}` : newQueueId()));
      let nextRow = 0;
      const freeRows: number[] = [];
      for (const [insert, k] of ops) {
        const id = pool[k]!;
        if (insert && !model.has(id)) {
          const row = freeRows.pop() ?? nextRow++;
          table.set(id, row);
          model.set(id, row);
          rowIds.set(row, id);
        } else if (!insert && model.has(id)) {
          const row = model.get(id)!;
          table.deleteRow(row);
          model.delete(id);
          rowIds.delete(row);
          freeRows.push(row);
        }
      }
      assert.equal(table.size, model.size);
      for (const id of pool) assert.equal(table.get(id), model.get(id));
      for (const [row, id] of rowIds) assert.equal(table.idOf(row), id);
    }),
    { numRuns: 60 },
  );
});
