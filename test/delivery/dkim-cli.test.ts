// `mailward dkim keygen|record` in a real process: the key file (mode 0600, never overwritten
// without --force) and the TXT record printed, which verifies a signature made with that key.
// The command is mounted on its own program here, as index.ts mounts it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dkimRecordValue } from '../../src/delivery/dkim-sign.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PROGRAM = `
import { Command } from 'commander';
import { registerDkim } from '${path.join(ROOT, 'src/shells/cli/dkim.ts')}';
const program = new Command('mailward').option('-c, --config <file>').exitOverride();
registerDkim(program);
try { await program.parseAsync(process.argv); } catch (err) { process.stderr.write(String(err.message) + '\\n'); process.exitCode = err.exitCode ?? 1; }
`;

function dkim(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', PROGRAM, 'node', 'dkim', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('dkim keygen: writes dataDir/dkim/<domain>.<selector>.key and prints the TXT record to publish', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-dkim-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'mailward.yaml');
  writeFileSync(config, `domains: [example.org]\ndataDir: ${path.join(dir, 'data')}\n`);
  const r = dkim(['keygen', 'Example.org', '--selector', 's2025', '--config', config]);
  assert.equal(r.code ?? 0, 0, r.stderr);
  const file = path.join(dir, 'data', 'dkim', 'example.org.s2025.key');
  const pem = readFileSync(file, 'utf8');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], `wrote ${file} (RSA 2048, selector s2025)`);
  assert.equal(lines[1], 'publish this TXT record in the DNS of example.org:');
  const txt = lines[3]!;
  assert.ok(txt.startsWith('s2025._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; p='), txt);
  assert.equal([...txt.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join(''), dkimRecordValue(pem), 'the printed record is the key\'s');

  const again = dkim(['keygen', 'example.org', '--selector', 's2025', '--config', config]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /example\.org\.s2025\.key exists; choose another --selector, or --force to replace it/);
  assert.equal(readFileSync(file, 'utf8'), pem, 'the published key was not replaced');

  const ed = dkim(['keygen', 'example.org', '--selector', 'ed1', '--type', 'ed25519', '--config', config]);
  assert.match(ed.stdout, /ed1\._domainkey\.example\.org\. IN TXT \( "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=" \)/);
  const rec = dkim(['record', 'example.org', '--selector', 's2025', '--config', config]);
  assert.equal(rec.stdout.split('\n')[2], txt);
  const bad = dkim(['keygen', 'not a domain', '--config', config]);
  assert.match(bad.stderr, /"not a domain" is not a domain name/);
});
