// `mailward doctor` on rate-limit rules whose stage list lacks the rate-limit check: a rule
// counting connections (connect list) or messages (data list) that no listener runs is never
// applied. Each config is paired with the exact finding; the defaults and a correct list give none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig, type Config } from '../../src/config/load.ts';
import { auditConfig } from '../../src/doctor/audit-config.ts';
import { formatFinding, type Finding } from '../../src/doctor/finding.ts';

const LISTENERS = {
  mx: { kind: 'mx', port: 25 },
  submission: { kind: 'submission', port: 587 },
  submissions: { kind: 'submissions', port: 465 },
};
const CONNECTIONS = { name: 'net-conn', count: 'connections', key: 'network', window: '1s', limit: 5 };
const MESSAGES = { name: 'client-messages', count: 'messages', key: 'client', window: '1h', limit: 100 };

function config(extra: Record<string, unknown>): Config {
  return buildConfig({ hostname: 'mx.example.org', domains: ['example.org'], dataDir: '/srv/mailward', listeners: LISTENERS, ...extra }, 'mailward.yaml', '/srv');
}

/** The findings of this kind from the config audit (the part of `mailward doctor` that reads the config). */
function placement(c: Config): Finding[] {
  return auditConfig(c, { interfaces: {} }).filter((f) => f.id === 'rate-limit-not-run');
}

test('doctor: a connection rule with rate-limit missing from the connect list (written by the operator) is a warning', () => {
  const expected: Finding = {
    id: 'rate-limit-not-run',
    severity: 'warning',
    setting: 'pipeline.connect',
    message: 'rule "net-conn" (checks.rate-limit.rules[0]) counts connections, but the connect list of listeners "mx", "submission", "submissions" does not run rate-limit, so the rule never counts or limits connections there',
    fix: 'add rate-limit to pipeline.connect, e.g. pipeline.connect: [rate-limit, dnsbl]',
  };
  const c = config({ pipeline: { connect: ['dnsbl'] }, checks: { 'rate-limit': { rules: [CONNECTIONS] } } });
  assert.deepEqual(placement(c), [expected]);
  assert.equal(
    formatFinding(expected),
    'warning rate-limit-not-run at pipeline.connect: rule "net-conn" (checks.rate-limit.rules[0]) counts connections, but the connect list of listeners "mx", "submission", "submissions" does not run rate-limit, so the rule never counts or limits connections there. Fix: add rate-limit to pipeline.connect, e.g. pipeline.connect: [rate-limit, dnsbl]',
  );
  // Nothing else in the config audit is about it: a warning, so the doctor still exits 0 for it.
  assert.deepEqual(auditConfig(c, { interfaces: {} }).filter((f) => f.severity === 'error'), []);
});

test('doctor: a message rule kept to one listener whose own data list lacks rate-limit names that listener and places the fix before permit-login', () => {
  const submission = { kind: 'submission', port: 587, pipeline: { data: ['sender-login', 'permit-login', 'spam'] } };
  const c = config({ listeners: { ...LISTENERS, submission }, checks: { 'rate-limit': { rules: [CONNECTIONS, { ...MESSAGES, listeners: ['submission'] }] } } });
  assert.deepEqual(placement(c), [
    {
      id: 'rate-limit-not-run',
      severity: 'warning',
      setting: 'listeners.submission.pipeline.data',
      message: 'rule "client-messages" (checks.rate-limit.rules[1]) counts messages, but the data list of listener "submission" does not run rate-limit, so the rule never counts or limits messages there',
      fix: 'add rate-limit to listeners.submission.pipeline.data, e.g. listeners.submission.pipeline.data: [sender-login, rate-limit, permit-login, spam]',
    },
  ]);
});

test('doctor: a message rule with a global data list lacking rate-limit: one finding for the list; the fix goes before a permit that some listener can give', () => {
  const c = config({ pipeline: { data: ['permit-login', 'sender-login', 'spam'] }, checks: { 'rate-limit': { rules: [MESSAGES] } } });
  assert.deepEqual(placement(c), [
    {
      id: 'rate-limit-not-run',
      severity: 'warning',
      setting: 'pipeline.data',
      message: 'rule "client-messages" (checks.rate-limit.rules[0]) counts messages, but the data list of listeners "mx", "submission", "submissions" does not run rate-limit, so the rule never counts or limits messages there',
      fix: 'add rate-limit to pipeline.data, e.g. pipeline.data: [rate-limit, permit-login, sender-login, spam]',
    },
  ]);
});

test('doctor: no rate-limit-not-run finding where the rules are applied', () => {
  const both = { 'rate-limit': { rules: [CONNECTIONS, MESSAGES] } };
  const harmless: Array<Record<string, unknown>> = [
    // The default lists run rate-limit at connect and data.
    { checks: both },
    // The operator's own lists, with rate-limit kept (warn-only still counts and logs).
    { pipeline: { connect: ['dnsbl', 'rate-limit'], data: ['sender-login', { check: 'rate-limit', mode: 'warn' }, 'permit-login', 'spam'] }, checks: both },
    // Lists without rate-limit, but no rule counts there (the default rules count recipients).
    { pipeline: { connect: [], data: ['sender-login', 'permit-login', 'spam'] } },
    // A rule kept to the mx listener, and only mx runs the check there.
    { listeners: { ...LISTENERS, mx: { kind: 'mx', port: 25, pipeline: { connect: ['rate-limit'] } } }, pipeline: { connect: [] }, checks: { 'rate-limit': { rules: [{ ...CONNECTIONS, listeners: ['mx'] }] } } },
  ];
  for (const extra of harmless) assert.deepEqual(placement(config(extra)), [], JSON.stringify(extra));
});
