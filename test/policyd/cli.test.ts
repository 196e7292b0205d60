// `mailward policyd` as an operator runs it: a YAML config file with a `policyd` section, --listen
// on TCP and a unix socket, answers over both, a clean stop on SIGTERM, and the exact errors for a
// bad --listen and a bad policyd section.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Command } from 'commander';
import { registerPolicyd } from '../../src/shells/cli/policyd.ts';
import { policyClient, rcptRequest } from './helpers.ts';
import { freePort } from '../harness/ports.ts';

function program(): Command {
  const p = new Command('mailward').option('-c, --config <file>').exitOverride();
  registerPolicyd(p);
  p.commands.forEach((c) => c.exitOverride());
  return p;
}

function setup(t: TestContext, policyd: string): { dir: string; config: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-policyd-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'mailward.yaml');
  writeFileSync(
    config,
    [
      'domains: [example.org]',
      'dataDir: data',
      'log: { level: silent }',
      'dns: { servers: ["127.0.0.1:9"], timeout: 200, tries: 1 }',
      'checks:',
      '  sender-access: { entries: { "rej@x.example": reject } }',
      policyd,
      '',
    ].join('\n'),
  );
  return { dir, config };
}


async function connectWhenUp(port: number): Promise<Awaited<ReturnType<typeof policyClient>>> {
  for (let i = 0; ; i++) {
    try {
      return await policyClient(port);
    } catch (err) {
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

test('cli: mailward policyd --listen tcp and unix answers with the configured checks, stops on SIGTERM', async (t) => {
  const { dir, config } = setup(t, 'policyd:\n  pipeline:\n    RCPT: [sender-access]');
  const port = await freePort();
  const sock = path.join(dir, 'policy.sock');
  const running = program().parseAsync(['node', 'mailward', '--config', config, 'policyd', '--listen', `tcp:127.0.0.1:${port}`, `unix:${sock}`]);
  const c = await connectWhenUp(port);
  assert.equal(await c.ask(rcptRequest({ sender: 'rej@x.example' })), '554 5.7.1 Access denied');
  const u = await policyClient(sock);
  assert.equal(await u.ask(rcptRequest()), 'DUNNO');
  process.emit('SIGTERM');
  await running;
  await c.closed();
  await u.closed();
  assert.equal(existsSync(sock), false, 'the socket is removed on stop');
  assert.equal(existsSync(path.join(dir, 'data', 'state.sqlite')), true, 'the store lives in dataDir');
});

test('cli: a bad --listen and a bad policyd section are refused with the setting and the fix', async (t) => {
  const { config } = setup(t, 'policyd:\n  pipeline:\n    DATA: [greylist]');
  await assert.rejects(program().parseAsync(['node', 'mailward', '--config', config, 'policyd', '--listen', 'tcp:example.org:10040']), {
    message: '--listen: "tcp:example.org:10040" must name an IP address (or localhost), not a host name; write tcp:127.0.0.1:10040 or unix:/var/spool/postfix/private/mailward',
  });
  await assert.rejects(program().parseAsync(['node', 'mailward', '--config', config, 'policyd', '--listen', 'tcp:127.0.0.1:0']), {
    message: `config error at policyd.pipeline.DATA[0]: check "greylist" does not work at protocol state DATA (it serves the rcpt stage) (in ${config}). Fix: place it under: RCPT, VRFY`,
  });
  const bad = setup(t, 'policyd:\n  actions: { permit: ACCEPT }');
  await assert.rejects(program().parseAsync(['node', 'mailward', '--config', bad.config, 'policyd']), {
    message: `config error at policyd.actions.permit: "ACCEPT" is not allowed (in ${bad.config}). Fix: use one of "DUNNO", "OK"`,
  });
});
