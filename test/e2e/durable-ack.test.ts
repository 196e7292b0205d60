// Each 250 after DATA comes only once ITS message file and its folder entry are on disk, also
// while many sessions commit at once and their folder fsyncs are shared. The spool logs each
// fsync at debug level as it completes; a client's 250 must find both lines of its queue id
// already there (the log is written in this process before the reply goes out on the socket).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../harness/server.ts';
import { dial } from '../harness/dial.ts';

const SESSIONS = 12;

test('durable 250: under concurrent sessions each 250 follows the fsync of its own file and folder', async (t) => {
  const srv = await startServer(t, { users: [['alice@example.org', 'correct horse battery']] });
  const fsynced = (id: string, what: string): boolean => srv.logs.some((l) => l.event === 'spool-fsync' && l.id === id && l.what === what);

  const one = async (n: number): Promise<string> => {
    const c = await dial(srv.port('mx'));
    await c.expect('220');
    await c.say(`EHLO client${n}.example.net`).expect('250');
    await c.say(`MAIL FROM:<s${n}@example.net>`).expect('250');
    await c.say('RCPT TO:<alice@example.org>').expect('250');
    await c.say('DATA').expect('354');
    c.send(`From: <s${n}@example.net>\r\nSubject: m${n}\r\n\r\nbody ${n}\r\n.\r\n`);
    const r = await c.expect('250 2.0.0 Ok: queued as ');
    const id = r.text.split(' ').pop()!;
    // Checked at once, before anything else runs: what the log holds when the 250 arrived.
    const file = fsynced(id, 'file');
    const folder = fsynced(id, 'folder');
    await c.say('QUIT').expect('221');
    assert.ok(file, `250 for ${id} came before its file fsync completed`);
    assert.ok(folder, `250 for ${id} came before its folder fsync completed`);
    return id;
  };
  const ids = await Promise.all(Array.from({ length: SESSIONS }, (_, n) => one(n)));
  assert.equal(new Set(ids).size, SESSIONS);
  await srv.waitForMail('alice@example.org', SESSIONS);
});
