// `mailward config show --changed` (as postconf -n): only the settings that differ from the
// defaults, one `key = value` a line; a key written with its default value is no change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runMailward } from '../harness/cli.ts';

test('config show --changed prints only non-default settings', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-changed-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'mailward.yaml');
  writeFileSync(
    file,
    ['domains: [example.org]', 'dataDir: /var/lib/mailward', 'user: mailward', 'limits:', '  maxRecipients: 100', '  maxMessageSize: 10MB', 'listeners:', '  mx: { kind: mx, port: 25, host: 0.0.0.0 }', ''].join('\n'),
  );
  const out = await runMailward(['config', 'show', '--changed', '--config', file]);
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(out.stdout.split('\n').filter(Boolean), [
    'dataDir = "/var/lib/mailward"',
    'domains = ["example.org"]',
    'limits.maxMessageSize = 10485760',
    'listeners.mx.host = "0.0.0.0"',
    'listeners.mx.port = 25',
    'listeners.submission = (not set)',
    'listeners.submissions = (not set)',
    'user = "mailward"',
  ]);
  // The full view still shows the defaults.
  const all = await runMailward(['config', 'show', '--config', file]);
  assert.match(all.stdout, /maxRecipients: 100/);
});

test('config show --changed on the built-in default prints nothing', async () => {
  const out = await runMailward(['config', 'show', '--changed']);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, '');
});
