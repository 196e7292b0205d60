// Nothing in a Postfix config is silently dropped: every parameter the importer did not read, and
// every master.cf service it did not turn into something, is in the report with its file:line and
// an answer (harmless and why, set by hand, or unknown). Checked against a real Postfix: every
// parameter `postconf -n` and `postconf -P` print for each fixture is either read by the
// translation or listed at its line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { planImport, type ImportPlan } from '../../src/import/postfix/translate.ts';
import { FIXTURES } from './helpers.ts';

const POSTCONF = '/usr/sbin/postconf';
const skip = existsSync(POSTCONF) || process.env.MAILWARD_REQUIRE_ALL_TESTS === '1' ? false : 'postfix is not installed (postconf)';

const plan = (name: string, postconf: string | false = false): ImportPlan => planImport({ root: path.join(FIXTURES, name), configDir: '/etc/postfix', postconf });

function item(p: ImportPlan, id: string, source: string, level?: string): void {
  const hit = p.report.items.find((i) => i.id === id && i.source === source);
  assert.ok(hit, `${id} at ${source}; at that line: ${JSON.stringify(p.report.items.filter((i) => i.source === source))}`);
  if (level) assert.equal(hit.level, level, `${id} at ${source}`);
  if (hit.level === 'warning') assert.ok((hit.fix ?? '').length > 10, `${id} at ${source} says what to do`);
}

test('office-filters: unread parameters and ignored services are listed with their line and what to do', () => {
  for (const postconf of [false, POSTCONF] as const) {
    if (postconf && !existsSync(postconf)) continue;
    const p = plan('office-filters', postconf);
    // (a) harmless, with the reason.
    item(p, 'unread-harmless', 'main.cf:12', 'info'); // biff
    item(p, 'unread-harmless', 'main.cf:13', 'info'); // append_dot_mydomain
    item(p, 'unread-harmless', 'main.cf:14', 'info'); // readme_directory
    item(p, 'unread-harmless', 'main.cf:27', 'info'); // smtpd_sasl_security_options
    item(p, 'unread-harmless', 'master.cf:6 (-o)', 'info'); // syslog_name of submission
    // (b) Mailward has it: set by hand.
    item(p, 'unread-by-hand', 'main.cf:36', 'warning'); // smtpd_banner with its own text
    item(p, 'unread-by-hand', 'main.cf:37', 'warning'); // smtpd_client_connection_count_limit
    item(p, 'unread-by-hand', 'main.cf:38', 'warning'); // maximal_queue_lifetime
    item(p, 'unread-no-equivalent', 'main.cf:35', 'warning'); // header_checks
    item(p, 'unread-no-equivalent', 'main.cf:40', 'warning'); // soft_bounce
    // (c) unknown: check what it does.
    item(p, 'unread-unknown', 'main.cf:39', 'warning'); // smtpd_client_event_limit_exceptions
    // Written twice: the earlier line is named; a restriction class no list uses.
    item(p, 'unread-replaced', 'main.cf:15', 'info');
    item(p, 'unread-class', 'main.cf:32', 'info');
    // master.cf: the content filter's transport, pipe transports, a spawn and an unknown service.
    item(p, 'service-filter', 'master.cf:45', 'warning');
    item(p, 'unread-service-option', 'master.cf:48 (-o)', 'info');
    item(p, 'reinjection', 'master.cf:49', 'warning');
    item(p, 'unread-service-option', 'master.cf:53 (-o)', 'info');
    item(p, 'service-pipe', 'master.cf:56', 'warning'); // tickets, named by transport_maps
    item(p, 'service-pipe', 'master.cf:58', 'warning'); // Dovecot's deliver: use LMTP
    assert.match(p.report.items.find((i) => i.source === 'master.cf:58')!.fix!, /LMTP/);
    item(p, 'service-spawn', 'master.cf:60', 'warning');
    item(p, 'service-unknown', 'master.cf:62', 'warning');
    item(p, 'service-postfix', 'master.cf:63', 'info'); // Debian's stock maildrop example
    item(p, 'service-postfix', 'master.cf:20', 'info'); // pickup
    // A listener's own -o mynetworks: the trap is an error there too; the rest cannot be per listener.
    item(p, 'mynetworks-loopback', 'master.cf:67 (-o)', 'error');
    item(p, 'mynetworks-listener', 'master.cf:67 (-o)', 'warning');
    assert.deepEqual((p.config.relay as { trustedNetworks: string[] }).trustedNetworks, ['10.9.0.0/24'], "main.cf's mynetworks only");
    // Read and translated, so not listed as unread.
    assert.ok(!p.report.items.some((i) => i.id.startsWith('unread') && i.source === 'main.cf:41'), 'message_size_limit (the later line) is translated');
    assert.equal((p.config.limits as { maxMessageSize?: number }).maxMessageSize, 36700160);
  }
});

/** postconf's view of a fixture: main.cf (-n) and master.cf -o (-P) settings. */
function postconf(dir: string, flag: '-n' | '-P'): Array<{ key: string; value: string }> {
  const out = execFileSync(POSTCONF, [flag, '-c', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter(Boolean).map((l) => {
    const m = /^(\S+) =(?: (.*))?$/.exec(l)!;
    return { key: m[1]!, value: m[2] ?? '' };
  });
}

for (const name of readdirSync(FIXTURES).sort()) {
  test(`${name}: every setting postconf -n and -P print is read by the importer or listed at its line`, { skip }, () => {
    const dir = path.join(FIXTURES, name, 'etc/postfix');
    const p = plan(name, POSTCONF);
    const listed = new Set(p.report.items.map((i) => i.source));
    const missing: string[] = [];
    const check = (key: string, value: string, service: string | undefined): void => {
      const candidates = p.params.filter((x) => x.name === key && x.service === service);
      const last = candidates[candidates.length - 1];
      if (!last) return void missing.push(`${service ? `${service}/` : ''}${key}: not found by the importer's parser`);
      assert.equal(last.value, value, `${name}: ${key} reads as postconf prints it`);
      for (const c of candidates) if (!c.read && !listed.has(c.source)) missing.push(`${c.source} ${key} = ${c.value}: neither read nor listed`);
    };
    for (const { key, value } of postconf(dir, '-n')) if (key !== 'config_directory') check(key, value, undefined);
    for (const { key, value } of postconf(dir, '-P')) {
      const [svc, type, param] = key.split('/') as [string, string, string];
      check(param, value, `${svc}/${type}`);
    }
    assert.deepEqual(missing, [], `${name}:\n${missing.join('\n')}`);
  });
}
