// examples/mailward.yaml states the auth defaults as they are (an operator copies the file and
// reads its comments as the meaning): every value it writes under `auth` is the schema default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { buildConfig, loadConfig } from '../../src/config/load.ts';

test('config: the auth section of examples/mailward.yaml is the defaults, each key written out', () => {
  const file = path.resolve(import.meta.dirname, '../../examples/mailward.yaml');
  const written = (parse(readFileSync(file, 'utf8')) as { auth: Record<string, unknown> }).auth;
  const example = loadConfig(file).auth;
  const defaults = buildConfig({ dataDir: '/srv/mailward' }, 'defaults', '/srv').auth;
  assert.deepEqual(example, defaults);
  for (const key of ['maxFailures', 'maxNetworkFailures', 'maxLoginFailures', 'delay', 'maxDelay', 'window', 'block', 'hashQueue']) {
    assert.ok(key in written, `examples/mailward.yaml shows auth.${key}`);
  }
});
