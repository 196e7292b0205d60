// The SQLite directory on a real file: mailboxes, passwords, aliases (chains, loops, catch-all),
// subaddressing, case, send-as, and two Directory objects sharing one file as server and CLI do.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { Directory } from '../../src/directory/directory.ts';
import { MAX_DEPTH } from '../../src/directory/resolve.ts';

const DOMAINS = ['example.org', 'Example.NET.'];
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailward-directory-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
/** A fresh directory file for one test; closed after it. */
function fresh(t: { after: (fn: () => void) => void }, recipientDelimiter: string | undefined = '+'): { d: Directory; path: string } {
  const path = join(dir, `d${n++}`, 'directory.sqlite');
  const d = Directory.open(path, recipientDelimiter === undefined ? { domains: DOMAINS } : { domains: DOMAINS, recipientDelimiter });
  t.after(() => d.close());
  return { d, path };
}

const local = (mailboxes: string[], external: string[] = [], dropped: string[] = []) => ({ kind: 'local', mailboxes, external, dropped });

void describe('opening', () => {
  void test('refuses an invalid domain or delimiter, naming the setting and the fix', () => {
    assert.throws(() => Directory.open(join(dir, 'x.sqlite'), { domains: ['example.org', 'bad_domain'] }), {
      message: 'config error at domains[1]: "bad_domain" is not a valid domain name; write a name such as example.org',
    });
    assert.throws(() => Directory.open(join(dir, 'x.sqlite'), { domains: ['example.org'], recipientDelimiter: '@' }), {
      message:
        'config error at recipientDelimiter: "@" cannot separate a subaddress; use one or more of the characters + - = _ ~ # $ & * ^ !, e.g. "+"',
    });
  });

  void test('creates a private WAL-mode file', async (t) => {
    const { path } = fresh(t);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const raw = new Database(path, { readonly: true });
    t.after(() => raw.close());
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(raw.pragma('user_version', { simple: true }), 2);
  });

  void test('refuses a file from a newer schema', (t) => {
    const { d, path } = fresh(t);
    d.close();
    const raw = new Database(path);
    raw.pragma('user_version = 7');
    raw.close();
    assert.throws(() => Directory.open(path, { domains: DOMAINS }), {
      message: `directory ${path} has schema version 7, newer than this Mailward knows (2); upgrade Mailward or point the directory setting at another file`,
    });
  });

  void test('knows its domains, case and trailing dot aside', (t) => {
    const { d } = fresh(t);
    assert.equal(d.isLocalDomain('example.org'), true);
    assert.equal(d.isLocalDomain('EXAMPLE.ORG.'), true);
    assert.equal(d.isLocalDomain('example.net'), true);
    assert.equal(d.isLocalDomain('example.com'), false);
    assert.equal(d.isLocalDomain('sub.example.org'), false);
  });
});

void describe('mailboxes', () => {
  void test('add, list, authenticate, change password, disable, delete', async (t) => {
    const { d } = fresh(t);
    const t0 = Date.now();
    await d.addUser('Alice@Example.ORG', 's3cret');
    await d.addUser('bob@example.net', 'hunter2');
    const users = d.listUsers();
    assert.deepStrictEqual(
      users.map((u) => [u.address, u.disabled]),
      [
        ['alice@example.org', false],
        ['bob@example.net', false],
      ],
    );
    assert.ok(users[0]!.created.getTime() >= t0 - 1000 && users[0]!.created.getTime() <= Date.now());

    assert.equal(await d.authenticate('alice@example.org', 's3cret'), true);
    assert.equal(await d.authenticate('ALICE@EXAMPLE.org', 's3cret'), true);
    assert.equal(await d.authenticate('alice@example.org', 'S3cret'), false);
    assert.equal(await d.authenticate('alice@example.org', 'hunter2'), false);
    assert.equal(await d.authenticate('alice', 's3cret'), false);
    assert.equal(await d.authenticate('nobody@example.org', 's3cret'), false);
    assert.equal(await d.authenticate('<alice@example.org>', 's3cret'), false);

    await d.setPassword('alice@EXAMPLE.org', 'n3w');
    assert.equal(await d.authenticate('alice@example.org', 's3cret'), false);
    assert.equal(await d.authenticate('alice@example.org', 'n3w'), true);

    d.setDisabled('alice@example.org', true);
    assert.equal(d.listUsers()[0]!.disabled, true);
    assert.equal(await d.authenticate('alice@example.org', 'n3w'), false);
    d.setDisabled('alice@example.org', false);
    assert.equal(await d.authenticate('alice@example.org', 'n3w'), true);

    assert.equal(d.deleteUser('ALICE@example.org'), true);
    assert.equal(d.deleteUser('alice@example.org'), false);
    assert.equal(await d.authenticate('alice@example.org', 'n3w'), false);
    assert.deepStrictEqual(
      d.listUsers().map((u) => u.address),
      ['bob@example.net'],
    );
  });

  void test('refuses a foreign domain, a duplicate, bad input and unknown mailboxes', async (t) => {
    const { d } = fresh(t);
    await assert.rejects(d.addUser('carol@other.example', 'pw'), {
      message: 'cannot use carol@other.example: the domain other.example is not one of ours; add it to `domains` in the config',
    });
    await d.addUser('carol@example.org', 'pw');
    await assert.rejects(d.addUser('Carol@Example.org', 'pw2'), {
      message: 'mailbox carol@example.org already exists; to change its password use setPassword',
    });
    await assert.rejects(d.addUser('carol', 'pw'), {
      message: '"carol" is not a valid address (missing @); write it as user@example.org',
    });
    await assert.rejects(d.addUser('dave@example.org', ''), { message: 'password must not be empty' });
    await assert.rejects(d.setPassword('dave@example.org', 'pw'), { message: 'no mailbox dave@example.org; add it first with addUser' });
    assert.throws(() => d.setDisabled('dave@example.org', true), { message: 'no mailbox dave@example.org; add it first with addUser' });
    assert.deepStrictEqual(
      d.listUsers().map((u) => u.address),
      ['carol@example.org'],
    );
  });
});

void describe('aliases and recipients', () => {
  void test('resolves mailboxes, alias chains, groups with foreign targets, case and foreign domains', async (t) => {
    const { d } = fresh(t);
    await d.addUser('alice@example.org', 'pw');
    await d.addUser('bob@example.net', 'pw');
    d.addAlias('Postmaster@example.org', ['ALICE@example.org']);
    d.addAlias('hostmaster@example.org', ['postmaster@example.org']);
    d.addAlias('team@example.org', ['alice@example.org', 'bob@example.net', 'Carol@Remote.Example', 'alice@example.org']);

    assert.deepStrictEqual(d.resolveRecipient('alice@example.org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('ALICE@Example.Org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('postmaster@EXAMPLE.ORG'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('hostmaster@example.org'), local(['alice@example.org']));
    assert.deepStrictEqual(
      d.resolveRecipient('team@example.org'),
      local(['alice@example.org', 'bob@example.net'], ['Carol@remote.example']),
    );
    assert.deepStrictEqual(d.resolveRecipient('nobody@example.org'), { kind: 'unknown' });
    assert.deepStrictEqual(d.resolveRecipient('alice@remote.example'), { kind: 'foreign' });
    assert.deepStrictEqual(d.resolveRecipient('not an address'), { kind: 'unknown' });

    assert.deepStrictEqual(d.listAliases(), [
      { address: 'hostmaster@example.org', targets: ['postmaster@example.org'] },
      { address: 'postmaster@example.org', targets: ['alice@example.org'] },
      { address: 'team@example.org', targets: ['alice@example.org', 'bob@example.net', 'Carol@remote.example'] },
    ]);
    assert.equal(d.deleteAlias('Team@example.org'), true);
    assert.equal(d.deleteAlias('team@example.org'), false);
    assert.deepStrictEqual(d.resolveRecipient('team@example.org'), { kind: 'unknown' });
  });

  void test('survives loops, reports dangling targets, and stops at the depth limit', async (t) => {
    const { d } = fresh(t);
    await d.addUser('alice@example.org', 'pw');
    d.addAlias('x@example.org', ['y@example.org']);
    d.addAlias('y@example.org', ['x@example.org']);
    d.addAlias('self@example.org', ['self@example.org']);
    d.addAlias('l1@example.org', ['l2@example.org', 'alice@example.org']);
    d.addAlias('l2@example.org', ['l1@example.org']);
    d.addAlias('half@example.org', ['ghost@example.org', 'alice@example.org']);
    d.addAlias('dead@example.org', ['ghost@example.org']);

    assert.deepStrictEqual(d.resolveRecipient('x@example.org'), { kind: 'unknown' });
    assert.deepStrictEqual(d.resolveRecipient('self@example.org'), { kind: 'unknown' });
    assert.deepStrictEqual(d.resolveRecipient('l1@example.org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('l2@example.org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('half@example.org'), local(['alice@example.org'], [], ['ghost@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('dead@example.org'), { kind: 'unknown' });

    // c0 → c1 → … → cN → alice: alice sits at depth N+1.
    const chain = (prefix: string, len: number): void => {
      for (let i = 0; i < len; i++) d.addAlias(`${prefix}${i}@example.org`, [i === len - 1 ? 'alice@example.org' : `${prefix}${i + 1}@example.org`]);
    };
    chain('ok', MAX_DEPTH);
    chain('deep', MAX_DEPTH + 1);
    assert.deepStrictEqual(d.resolveRecipient('ok0@example.org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('deep0@example.org'), { kind: 'unknown' });
    assert.deepStrictEqual(d.resolveRecipient('deep1@example.org'), local(['alice@example.org']));
  });

  void test('subaddressing: user+tag reaches user; an exact entry wins; off without a delimiter', async (t) => {
    const { d, path } = fresh(t);
    await d.addUser('alice@example.org', 'pw');
    await d.addUser('bob+list@example.org', 'pw');
    d.addAlias('sales@example.org', ['alice@example.org']);
    d.addAlias('fwd@example.org', ['alice+from-fwd@example.org']);

    assert.deepStrictEqual(d.resolveRecipient('alice+news@example.org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('Alice+News+More@EXAMPLE.org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('sales+q3@example.org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('fwd@example.org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('bob+list@example.org'), local(['bob+list@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('bob@example.org'), { kind: 'unknown' });
    assert.deepStrictEqual(d.resolveRecipient('+news@example.org'), { kind: 'unknown' });
    // Needless quotes change nothing (RFC 5321 §4.1.2); a local part that needs them is not split.
    assert.deepStrictEqual(d.resolveRecipient('"alice+x"@example.org'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('"alice+x y"@example.org'), { kind: 'unknown' });

    const plain = Directory.open(path, { domains: DOMAINS });
    t.after(() => plain.close());
    assert.deepStrictEqual(plain.resolveRecipient('alice+news@example.org'), { kind: 'unknown' });

    const multi = Directory.open(path, { domains: DOMAINS, recipientDelimiter: '+-' });
    t.after(() => multi.close());
    assert.deepStrictEqual(multi.resolveRecipient('alice-news+x@example.org'), local(['alice@example.org']));
  });

  void test('catch-all answers only for addresses nothing else answers for', async (t) => {
    const { d } = fresh(t);
    await d.addUser('alice@example.org', 'pw');
    await d.addUser('bob@example.net', 'pw');
    d.addAlias('@Example.NET', ['alice@example.org']);
    assert.deepStrictEqual(d.resolveRecipient('anything@example.net'), local(['alice@example.org']));
    assert.deepStrictEqual(d.resolveRecipient('bob@example.net'), local(['bob@example.net']));
    assert.deepStrictEqual(d.resolveRecipient('anything@example.org'), { kind: 'unknown' });
    // A catch-all pointing at a missing address of its own domain does not loop.
    d.addAlias('@example.org', ['nobody@example.org']);
    assert.deepStrictEqual(d.resolveRecipient('anything@example.org'), { kind: 'unknown' });
    assert.equal(d.deleteAlias('@example.net'), true);
    assert.deepStrictEqual(d.resolveRecipient('anything@example.net'), { kind: 'unknown' });
    assert.throws(() => d.addAlias('@other.example', ['alice@example.org']), {
      message: 'cannot use @other.example: the domain other.example is not one of ours; add it to `domains` in the config',
    });
    assert.throws(() => d.addAlias('@bad_domain', ['alice@example.org']), { message: '"@bad_domain" is not a valid catch-all; write it as @example.org' });
  });

  void test('a disabled mailbox receives nothing', async (t) => {
    const { d } = fresh(t);
    await d.addUser('alice@example.org', 'pw');
    await d.addUser('bob@example.org', 'pw');
    d.addAlias('both@example.org', ['alice@example.org', 'bob@example.org']);
    d.setDisabled('bob@example.org', true);
    assert.deepStrictEqual(d.resolveRecipient('bob@example.org'), { kind: 'unknown' });
    assert.deepStrictEqual(d.resolveRecipient('both@example.org'), local(['alice@example.org'], [], ['bob@example.org']));
  });

  void test('refuses clashing, empty, foreign and invalid aliases', async (t) => {
    const { d } = fresh(t);
    await d.addUser('alice@example.org', 'pw');
    d.addAlias('info@example.org', ['alice@example.org']);
    assert.throws(() => d.addAlias('Alice@example.org', ['x@remote.example']), {
      message: 'alice@example.org is a mailbox; delete the mailbox first to make it an alias',
    });
    assert.throws(() => d.addAlias('INFO@example.org', ['x@remote.example']), {
      message: 'alias info@example.org already exists; delete it first to change its targets',
    });
    await assert.rejects(d.addUser('info@example.org', 'pw'), {
      message: 'info@example.org is an alias; delete the alias first to make it a mailbox',
    });
    assert.throws(() => d.addAlias('empty@example.org', []), { message: 'alias empty@example.org needs at least one target address' });
    assert.throws(() => d.addAlias('x@remote.example', ['alice@example.org']), {
      message: 'cannot use x@remote.example: the domain remote.example is not one of ours; add it to `domains` in the config',
    });
    assert.throws(() => d.addAlias('bad@example.org', ['alice@example.org', 'not an address']), {
      message: 'alias bad@example.org: target "not an address" is not a valid address (missing @); write it as user@example.org',
    });
    assert.deepStrictEqual(
      d.listAliases().map((a) => a.address),
      ['info@example.org'],
    );
  });
});

void describe('send-as', () => {
  void test('a login owns its address and every alias that reaches its mailbox', async (t) => {
    const { d } = fresh(t);
    await d.addUser('alice@example.org', 'pw');
    await d.addUser('bob@example.org', 'pw');
    await d.addUser('eve@example.org', 'pw');
    d.addAlias('postmaster@example.org', ['alice@example.org']);
    d.addAlias('abuse@example.org', ['postmaster@example.org']);
    d.addAlias('team@example.org', ['alice@example.org', 'bob@example.org']);
    d.addAlias('tagged@example.org', ['bob+x@example.org']);
    d.addAlias('out@example.org', ['someone@remote.example']);
    d.addAlias('@example.net', ['alice@example.org']);

    assert.deepStrictEqual(d.sendAsAllowed('Alice@Example.org'), [
      'alice@example.org',
      'abuse@example.org',
      'postmaster@example.org',
      'team@example.org',
    ]);
    assert.deepStrictEqual(d.sendAsAllowed('bob@example.org'), ['bob@example.org', 'tagged@example.org', 'team@example.org']);
    assert.deepStrictEqual(d.sendAsAllowed('eve@example.org'), ['eve@example.org']);
    assert.deepStrictEqual(d.sendAsAllowed('nobody@example.org'), []);
    assert.deepStrictEqual(d.sendAsAllowed('postmaster@example.org'), []);
    assert.deepStrictEqual(d.sendAsAllowed('garbage'), []);
    d.setDisabled('bob@example.org', true);
    assert.deepStrictEqual(d.sendAsAllowed('bob@example.org'), []);
  });
});

void describe('two processes on one file', () => {
  void test('changes made through one Directory are seen by the other at once', async (t) => {
    const { d: server, path } = fresh(t);
    const cli = Directory.open(path, { domains: DOMAINS, recipientDelimiter: '+' });
    t.after(() => cli.close());

    assert.deepStrictEqual(server.resolveRecipient('zoe@example.org'), { kind: 'unknown' });
    await cli.addUser('zoe@example.org', 'pw');
    assert.deepStrictEqual(server.resolveRecipient('zoe+x@example.org'), local(['zoe@example.org']));
    assert.equal(await server.authenticate('zoe@example.org', 'pw'), true);

    server.addAlias('z@example.org', ['zoe@example.org']);
    assert.deepStrictEqual(cli.resolveRecipient('z@example.org'), local(['zoe@example.org']));

    await cli.setPassword('zoe@example.org', 'pw2');
    assert.equal(await server.authenticate('zoe@example.org', 'pw'), false);
    assert.equal(await server.authenticate('zoe@example.org', 'pw2'), true);

    assert.equal(cli.deleteUser('zoe@example.org'), true);
    assert.equal(await server.authenticate('zoe@example.org', 'pw2'), false);
    assert.deepStrictEqual(server.resolveRecipient('z@example.org'), { kind: 'unknown' });
  });

  void test('two concurrent adds of one address: exactly one wins', async (t) => {
    const { d: a, path } = fresh(t);
    const b = Directory.open(path, { domains: DOMAINS });
    t.after(() => b.close());
    const results = await Promise.allSettled([a.addUser('race@example.org', 'one'), b.addUser('RACE@example.org', 'two')]);
    assert.deepStrictEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const rejected = results.find((r) => r.status === 'rejected');
    assert.equal((rejected?.reason as Error).message, 'mailbox race@example.org already exists; to change its password use setPassword');
    assert.deepStrictEqual(
      a.listUsers().map((u) => u.address),
      ['race@example.org'],
    );
  });
});
