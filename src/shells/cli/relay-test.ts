// `mailward relay-test HOST:PORT`: probes any SMTP server from the outside for open relaying and
// prints a verdict per attempt and overall. A thin front door over app/relay-test.ts; what an
// operator runs after changing their network (a tunnel, a proxy, a new port).
import type { Command } from 'commander';
import { replyLine, runRelayTest, RelayTestError, type AttemptResult, type RelayTestOptions, type RelayTestReport, type Verdict, DEFAULT_FOREIGN_DOMAIN, DEFAULT_HELO, DEFAULT_TIMEOUT_MS } from '../../app/relay-test.ts';
import { auditTrustFile, LOOPBACK_FORMS, type TrustFinding } from '../../app/relay-test-config.ts';
import { ConfigError } from '../../config/errors.ts';
import { CliError, EXIT } from './index.ts';
import { readPassword } from './password-input.ts';

interface RelayTestFlags {
  proxyV1?: string;
  proxyV2?: string;
  auth?: string;
  starttls?: boolean;
  tls?: boolean;
  from?: string;
  toDomain: string;
  localDomain?: string;
  helo: string;
  insecure?: boolean;
  json?: boolean;
  timeout: string;
}

const HELP = `
Each attempt is a fresh connection: (PROXY header,) EHLO, (STARTTLS,) (AUTH,) MAIL FROM, RCPT TO,
then RSET and QUIT. DATA is never sent, so no attempt can carry a message.

Verdicts (from the RCPT reply, or from MAIL when MAIL was refused):
  refused                  5xx: the server would not relay (a pass)
  RELAYED                  2xx without a login: an open relay (a fail)
  deferred / error         4xx, a dropped connection or a time-out: inconclusive, try again
  authenticated — allowed  2xx after --auth: a login may relay; that is what a login is for,
                           so it is not an open relay and does not fail the result
  sender refused/accepted  after --auth, MAIL FROM another user's address: informative only

Exit codes:
  0  no relay possible: no unauthenticated attempt was accepted, at least one was refused
  1  open relay: at least one unauthenticated attempt was accepted
  2  usage error, no connection or greeting, --auth failed, or no attempt answered definitively

With --auth, STARTTLS is used when the server offers it; the password is never sent without TLS,
and the certificate is verified (--insecure turns that off, e.g. for a self-signed test server).
"--auth user" without ":password" reads the password from the first line of stdin, which keeps
it out of the process list.

Examples:
  mailward relay-test mx.example.org:25
  mailward relay-test 127.0.0.1:2525 --proxy-v2 203.0.113.9
  mailward relay-test mail.example.org:587 --auth alice@example.org --json < password.txt
  mailward relay-test 127.0.0.1:25 --config /etc/mailward/mailward.yaml

With --config, the config's relay.trustedNetworks are judged as the server reads them (a range\nthat holds loopback, or one written in IPv4-mapped form, is an open relay), and a target on this\nhost is probed again from each loopback client form: 127.0.0.1, ::1 and ::ffff:127.0.0.1.
`;

/** HOST:PORT, [IPv6]:PORT, or HOST alone (then port 25, the MX port). */
export function parseTarget(text: string): { host: string; port: number } {
  const bad = (): never => {
    throw new CliError(`target ${JSON.stringify(text)} is not HOST:PORT; write e.g. mx.example.org:25, 127.0.0.1:2525 or [::1]:25`, EXIT.usage);
  };
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host, portText] = text.split(':') as [string, string];
  } else {
    host = text;
  }
  if (!host || /[\s/]/.test(host)) bad();
  if (portText === undefined) return { host, port: 25 };
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) bad();
  return { host, port: Number(portText) };
}

async function credentials(auth: string): Promise<{ user: string; password: string }> {
  const colon = auth.indexOf(':');
  if (colon === 0) throw new CliError('--auth: the login is empty; write --auth user@example.org:password or --auth user@example.org', EXIT.usage);
  if (colon > 0) return { user: auth.slice(0, colon), password: auth.slice(colon + 1) };
  return { user: auth, password: await readPassword({ stdin: true }) };
}

async function toOptions(target: string, f: RelayTestFlags): Promise<RelayTestOptions> {
  if (f.proxyV1 !== undefined && f.proxyV2 !== undefined) throw new CliError('--proxy-v1 and --proxy-v2 cannot be combined; pick the version the server expects', EXIT.usage);
  if (f.tls && f.starttls) throw new CliError('--tls (TLS from the first byte, port 465) and --starttls (upgrade, ports 25/587) cannot be combined; pick the one the port speaks', EXIT.usage);
  if (!/^[0-9]+$/.test(f.timeout)) throw new CliError(`--timeout ${JSON.stringify(f.timeout)} is not a whole number of milliseconds; write e.g. --timeout 10000`, EXIT.usage);
  const { host, port } = parseTarget(target);
  const proxySource = f.proxyV1 ?? f.proxyV2;
  return {
    host,
    port,
    tls: f.tls ? 'implicit' : f.starttls ? 'starttls' : 'none',
    ...(proxySource !== undefined ? { proxy: { version: f.proxyV1 !== undefined ? 1 : 2, source: proxySource } } : {}),
    ...(f.auth !== undefined ? { auth: await credentials(f.auth) } : {}),
    ...(f.from !== undefined ? { from: f.from } : {}),
    foreignDomain: f.toDomain,
    ...(f.localDomain !== undefined ? { localDomain: f.localDomain } : {}),
    helo: f.helo,
    timeoutMs: Number(f.timeout),
    ...(f.insecure ? { verifyTls: false } : {}),
  };
}

export const VERDICT_LABELS: Record<Verdict, string> = {
  refused: 'refused',
  relayed: 'RELAYED (open relay)',
  deferred: 'deferred (inconclusive)',
  error: 'error (inconclusive)',
  allowed: 'authenticated — allowed',
  'sender-refused': 'sender refused',
  'sender-accepted': 'sender accepted (informative)',
};

function cut(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

function row(a: AttemptResult): string[] {
  return [
    a.authenticated ? `${a.name} (auth)` : a.name,
    // The sender is shown where it is what the attempt varies.
    a.purpose === 'sender' || a.name === 'spoofed-sender' ? `${a.mailFrom} → ${a.rcptTo}` : a.rcptTo,
    a.mail ? cut(replyLine(a.mail), 44) : a.early ? cut(replyLine(a.early), 44) : '-',
    a.rcpt ? cut(replyLine(a.rcpt), 44) : '-',
    VERDICT_LABELS[a.verdict],
  ];
}

/** The readable report: a header, one table row per attempt, notes, and the RESULT line. */
export function formatReport(r: RelayTestReport): string {
  const how = [
    r.tls === 'implicit' ? 'implicit TLS' : r.tls === 'starttls' ? 'STARTTLS' : r.login ? 'STARTTLS when offered' : 'plain SMTP',
    ...(r.proxy ? [`PROXY v${r.proxy.version} claiming ${r.proxy.source}`] : []),
    ...(r.login ? [`login ${r.login}`] : []),
  ];
  const out: string[] = [
    `relay test of ${r.target}: ${how.join(', ')}`,
    `server: ${replyLine(r.server.greeting)}`,
    `local domain ${r.localDomain}, foreign domain ${r.foreignDomain}, sender <${r.from}>`,
    '',
  ];
  const rows = [['ATTEMPT', 'PATH', 'MAIL REPLY', 'RCPT REPLY', 'VERDICT'], ...r.attempts.map(row)];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((cells) => cells[i]!.length)));
  for (const cells of rows) out.push(cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
  const notes = r.attempts.filter((a) => a.note);
  if (notes.length > 0) {
    out.push('', 'notes:');
    for (const a of notes) out.push(`  ${a.name}: ${a.note}`);
  }
  out.push('');
  if (r.server.authWithoutTls) out.push('warning: the server offers AUTH on a connection without TLS; passwords could be read on the wire');
  if (r.authProblem) out.push(`warning: ${r.authProblem}`);
  const auth = r.attempts.filter((a) => a.authenticated && a.verdict !== 'error');
  if (auth.length > 0) out.push(`authenticated (not counted as open relay): ${auth.map((a) => `${a.name}: ${VERDICT_LABELS[a.verdict]}`).join('; ')}`);
  out.push(r.result);
  return `${out.join('\n')}\n`;
}

export function registerRelayTest(program: Command): void {
  program
    .command('relay-test <target>')
    .description('probe an SMTP server (Mailward or any other MTA) for open relaying; target is HOST:PORT')
    .option('--proxy-v1 <ip>', 'send a PROXY v1 header first, claiming this client address')
    .option('--proxy-v2 <ip>', 'send a PROXY v2 header first, claiming this client address')
    .option('--auth <user:pass>', 'also run the authenticated attempts with this login (see below)')
    .option('--starttls', 'upgrade every attempt with STARTTLS (RFC 3207)')
    .option('--tls', 'speak TLS from the first byte (RFC 8314, port 465)')
    .option('--from <address>', `envelope sender of the unauthenticated attempts (default: relay-test@ the foreign domain)`)
    .option('--to-domain <domain>', 'a domain the server does not receive mail for', DEFAULT_FOREIGN_DOMAIN)
    .option('--local-domain <domain>', "the server's own mail domain (default: its greeting host name minus the first label)")
    .option('--helo <name>', 'name to give in EHLO', DEFAULT_HELO)
    .option('--insecure', 'do not verify the TLS certificate when sending a password')
    .option('--json', 'print one JSON document instead of the table')
    .option('--timeout <ms>', 'limit for connecting and for each reply', String(DEFAULT_TIMEOUT_MS))
    .addHelpText('after', HELP)
    .action(async (target: string, flags: RelayTestFlags, cmd: Command) => {
      const options = await toOptions(target, flags);
      let report: RelayTestReport;
      try {
        report = await runRelayTest(options);
      } catch (err) {
        if (err instanceof RelayTestError) throw new CliError(err.message, EXIT.usage);
        throw err;
      }
      const file = cmd.optsWithGlobals<{ config?: string }>().config;
      const extra = file === undefined ? undefined : await configChecks(file, options);
      if (flags.json) process.stdout.write(`${JSON.stringify(extra ? { ...report, ...extra } : report, null, 2)}\n`);
      else process.stdout.write(formatReport(report) + (extra ? formatConfigChecks(extra) : ''));
      process.exitCode = extra?.openRelay ? EXIT_OPEN_RELAY : report.exitCode;
    });
}

const EXIT_OPEN_RELAY = 1;

interface ConfigChecks {
  readonly trust: readonly TrustFinding[];
  /** The battery again from each loopback client form (127.0.0.1, ::1, ::ffff:127.0.0.1). */
  readonly loopbackForms: ReadonlyArray<{ readonly from: string; readonly result: string; readonly openRelay: boolean }>;
  readonly openRelay: boolean;
}

const isLoopbackTarget = (host: string): boolean => /^(?:127\.|::1$|localhost$|::ffff:127\.)/i.test(host);

/** --config: the config's trusted networks judged as the server reads them, and, for a target on this host, every loopback client form tried live. */
async function configChecks(file: string, options: RelayTestOptions): Promise<ConfigChecks> {
  let trust: TrustFinding[];
  try {
    trust = auditTrustFile(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
  const loopbackForms: Array<{ from: string; result: string; openRelay: boolean }> = [];
  if (isLoopbackTarget(options.host)) {
    for (const host of LOOPBACK_FORMS) {
      try {
        const r = await runRelayTest({ ...options, host });
        loopbackForms.push({ from: host, result: r.result, openRelay: r.openRelay });
      } catch (err) {
        if (!(err instanceof RelayTestError)) throw err;
        loopbackForms.push({ from: host, result: `not reachable this way (${err.message})`, openRelay: false });
      }
    }
  }
  return { trust, loopbackForms, openRelay: trust.some((f) => f.openRelay) || loopbackForms.some((f) => f.openRelay) };
}

function formatConfigChecks(c: ConfigChecks): string {
  const out = ['', 'trusted networks in the config, as the server reads them:'];
  if (c.trust.length === 0) out.push('  none (relay.trustedNetworks is empty)');
  for (const f of c.trust) out.push(`  ${f.setting} ${JSON.stringify(f.value)}: ${f.message}`);
  if (c.loopbackForms.length > 0) out.push('client forms on loopback:');
  for (const f of c.loopbackForms) out.push(`  from ${f.from}: ${f.result}`);
  out.push(c.openRelay ? 'CONFIG RESULT: OPEN RELAY (see above)' : 'CONFIG RESULT: no trusted network that loopback, a tunnel or a mapped form opens');
  return `${out.join('\n')}\n`;
}
