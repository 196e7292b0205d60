// `mailward queue ...`, in the spirit of mailq and postsuper: list (streamed, with filters and a
// count summary) and show read the spool directly and change nothing; hold, release, delete,
// flush and requeue go to the running server over its control socket, or work on the spool
// themselves when no server runs (docs/decisions/0006-outbound-delivery.md).
import type { Command } from 'commander';
import type { Config } from '../../config/load.ts';
import { inspectMessage, inspectSpool, type InspectedMessage } from '../../queue/inspect.ts';
import { compileFilter, isEmptyFilter, messageState, MESSAGE_STATES, type MessageState, type QueueFilter } from '../../queue/filter.ts';
import type { AdminOp } from '../../queue/admin.ts';
import type { SpoolArea } from '../../queue/spool.ts';
import { userInfo } from 'node:os';
import { runQueueCommand, serverCatalog, serverSummary } from '../../app/delivery.ts';
import type { LoadProgress } from '../../queue/queue.ts';
import { age, olderThanMs } from './age.ts';
import { confirm } from './confirm.ts';
import { CliError, configFrom, EXIT } from './index.ts';
import { createProgress } from './progress.ts';

interface FilterOptions {
  sender?: string;
  recipient?: string;
  domain?: string;
  olderThan?: string;
  state?: string;
  login?: string;
}

function addFilterOptions(c: Command): Command {
  return c
    .option('--sender <address>', 'envelope sender: an address, "@domain" for a whole domain, or "<>" for bounces')
    .option('--recipient <address>', 'a recipient: an address or "@domain"')
    .option('--domain <domain>', 'a recipient domain')
    .option('--older-than <age>', 'received longer ago than this, e.g. 30m, 6h, 2d')
    .option('--state <state>', `message state: ${MESSAGE_STATES.join(', ')}`)
    .option('--login <login>', 'the SMTP AUTH login that submitted it ("" for mail without one)');
}

function filterFrom(o: FilterOptions): QueueFilter {
  const f: { -readonly [K in keyof QueueFilter]: QueueFilter[K] } = {};
  if (o.sender !== undefined) f.sender = o.sender;
  if (o.recipient !== undefined) f.recipient = o.recipient;
  if (o.domain !== undefined) f.domain = o.domain;
  if (o.olderThan !== undefined) {
    f.olderThanMs = olderThanMs(o.olderThan, '30m, 6h or 2d');
  }
  if (o.login !== undefined) f.login = o.login;
  if (o.state !== undefined) {
    if (!(MESSAGE_STATES as readonly string[]).includes(o.state)) throw new CliError(`--state ${JSON.stringify(o.state)} is not a state; use one of ${MESSAGE_STATES.join(', ')}`, EXIT.usage);
    f.state = o.state as MessageState;
  }
  return f;
}


function line(m: InspectedMessage, now: number): string {
  const e = m.envelope;
  const toGo = m.states.filter((s) => s.status === 'pending' || s.status === 'deferred').length;
  return `${e.id}  ${messageState(m.states, m.held).padEnd(8)}  ${String(e.size).padStart(9)}  ${age(now - e.receivedAt).padStart(4)}  <${e.mailFrom}>  ${toGo}/${e.recipients.length} to go`;
}

function top(counts: Map<string, number>, n: number): string[] {
  return [...counts]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, n)
    .map(([k, v]) => `  ${String(v).padStart(9)}  ${k}`);
}

/** Streams the matching messages (one file in memory at a time); unreadable files go to stderr. */
function* matching(config: Config, filter: QueueFilter, areas?: readonly SpoolArea[]): Generator<InspectedMessage> {
  const match = compileFilter(filter);
  for (const entry of inspectSpool(config.paths.spool, areas)) {
    if (!entry.ok) {
      process.stderr.write(`${entry.id}: unreadable (${entry.problem})\n`);
      continue;
    }
    const m = entry.message;
    if (match(m.envelope, m.states, m.held)) yield m;
  }
}

/** One line on the running server's start-up scan of the spool. */
export function catalogLine(p: LoadProgress): string {
  const n = (x: number): string => x.toLocaleString('en-US');
  // The snapshot counts are absent from a server of an older version.
  const source = p.fromSnapshot ? `, ${n(p.fromSnapshot)} from the catalog snapshot and ${n(p.read ?? 0)} file(s) read` : '';
  if (p.state === 'loaded') return `catalog loaded: ${n(p.scanned)} message(s) scanned in ${((p.ms ?? 0) / 1000).toFixed(1)} s${source} (${n(p.scheduled)} scheduled, ${n(p.held)} held, ${n(p.removed)} finished); ${n(p.catalogued)} catalogued now`;
  return `catalog ${p.state}: ${n(p.scanned)} message(s) scanned, ${Math.round(p.fraction * 100)}% of the spool's folders; ${n(p.catalogued)} catalogued (new mail included)`;
}

/** Told while the server makes a command wait for its catalog (once a second). */
const waitingForCatalog = (p: LoadProgress): void => {
  process.stderr.write(`waiting for the server to finish loading its queue: ${catalogLine(p)}\n`);
};

/** Who runs the command, for the server's summary line (the socket admits only the server's user and root). */
function operatorName(): string {
  const uid = process.getuid?.() ?? -1;
  let name = String(uid);
  try {
    name = userInfo().username;
  } catch {
    // no passwd entry for this uid: the number is all there is
  }
  return `${name} (uid ${uid}, cli)`;
}

const DONE: Record<AdminOp, string> = { hold: 'put on hold', release: 'released', delete: 'deleted', flush: 'flushed', requeue: 'requeued' };

interface ChangeOptions extends FilterOptions {
  all?: boolean;
  yes?: boolean;
}

function registerChange(queue: Command, op: AdminOp, description: string): void {
  const c = queue
    .command(`${op} [ids...]`)
    .description(description)
    .option('--all', op === 'flush' ? 'every message (the default without ids or filters)' : 'every message (needed when no ids or filters are given)');
  if (op === 'delete') c.option('-y, --yes', 'do not ask for confirmation');
  addFilterOptions(c).action(async (ids: string[], opts: ChangeOptions, cmd: Command) => {
    const config = configFrom(cmd);
    const filter = filterFrom(opts);
    const hasFilter = !isEmptyFilter(filter);
    if (ids.length > 0 && (hasFilter || opts.all)) throw new CliError('give queue ids, or filters/--all, not both', EXIT.usage);
    const all = opts.all === true || (op === 'flush' && ids.length === 0 && !hasFilter);
    if (ids.length === 0 && !hasFilter && !all) throw new CliError(`say which messages: queue ids, a filter (--sender, --recipient, --domain, --older-than, --state) or --all`, EXIT.usage);
    let total = ids.length > 0 ? ids.length : undefined;
    if (op === 'delete' && !opts.yes) {
      let count = ids.length;
      // Counted by the running server from its catalog (fast at any queue size), or in the spool.
      if (ids.length === 0) count = (await runQueueCommand(config, { op, countOnly: true, ...(hasFilter ? { filter } : {}), ...(all ? { all: true } : {}) }, undefined, waitingForCatalog)).matched;
      if (count === 0) {
        process.stdout.write('no matching messages\n');
        return;
      }
      if (!(await confirm(`delete ${count} message(s)${ids.length === 0 && !hasFilter ? ' (the whole queue)' : ''}? [y/N] `))) {
        process.stdout.write('nothing deleted\n');
        return;
      }
      total = count;
    }
    const progress = createProgress({ verb: DONE[op] });
    if (total !== undefined) progress.setTotal(total);
    const note = (p: { matched: number }): string => `- ${p.matched.toLocaleString('en-US')} matched`;
    const r = await runQueueCommand(config, { op, operator: operatorName(), ...(ids.length > 0 ? { ids } : {}), ...(hasFilter ? { filter } : {}), ...(all ? { all: true } : {}) }, (p) => progress.update(p.changed, note(p)), waitingForCatalog);
    progress.update(r.changed, note(r));
    progress.finish();
    const by = r.via === 'server' ? 'by the running server' : 'in the spool (no server running)';
    process.stdout.write(`${r.changed} message(s) ${DONE[op]} ${by}${r.missing > 0 ? `; ${r.missing} id(s) not found` : ''}\n`);
    if (r.removing) process.stdout.write(`they will never be delivered; their ${r.removing} file(s) are being removed in the background\n`);
    if (op === 'flush' && r.via === 'spool') process.stdout.write('they are tried when the server starts\n');
    if (r.missing > 0 && r.changed === 0) process.exitCode = EXIT.failed;
  });
}

export function registerQueue(program: Command): void {
  const queue = program.command('queue').description('inspect and manage the mail queue (also while the server runs)');
  addFilterOptions(
    queue
      .command('list')
      .description('list queued messages: id, state, size, age, sender, recipients still to deliver; then a count')
      .option('--json', 'one JSON object per line')
      .option('--summary', 'only counts: by state, top senders, top recipient domains')
      .option('--top <n>', 'entries in each top list of --summary', '10'),
  ).action(async (opts: FilterOptions & { json?: boolean; summary?: boolean; top: string }, cmd: Command) => {
    const config = configFrom(cmd);
    const filter = filterFrom(opts);
    const now = Date.now();
    const n = Number.parseInt(opts.top, 10);
    if (!(n >= 1)) throw new CliError(`--top ${JSON.stringify(opts.top)}: give a number of at least 1`, EXIT.usage);
    if (opts.summary && !opts.json) {
      // A running server answers from its catalog, without reading a file.
      const s = await serverSummary(config, filter, n);
      if (s) {
        const rows = (list: ReadonlyArray<readonly [string, number]>): string[] => list.map(([k, v]) => `  ${String(v).padStart(9)}  ${k}`);
        if (s.messages > 0) {
          process.stdout.write(['top senders:', ...rows(s.senders), 'top recipient domains (messages):', ...rows(s.domains)].join('\n') + '\n');
          process.stdout.write(`held ${s.held}, deferred ${s.deferred}, pending ${s.pending}; ${s.toGo} recipient(s) to go\n`);
        }
        process.stdout.write(`${s.messages} message(s) queued (counted by the running server)\n`);
        return;
      }
      process.stderr.write('no server running: counting from the spool files (slower)\n');
    }
    let count = 0;
    let toGo = 0;
    let bytes = 0;
    const states: Record<MessageState, number> = { held: 0, deferred: 0, pending: 0 };
    const senders = new Map<string, number>();
    const domains = new Map<string, number>();
    for (const m of matching(config, filter)) {
      count++;
      bytes += m.envelope.size;
      const st = messageState(m.states, m.held);
      states[st]++;
      const remaining = m.envelope.recipients.filter((_r, i) => m.states[i]?.status === 'pending' || m.states[i]?.status === 'deferred');
      toGo += remaining.length;
      if (opts.summary) {
        const from = m.envelope.mailFrom === '' ? '<>' : m.envelope.mailFrom.toLowerCase();
        senders.set(from, (senders.get(from) ?? 0) + 1);
        for (const d of new Set(remaining.map((r) => (r.mailbox ?? r.address).slice((r.mailbox ?? r.address).lastIndexOf('@') + 1).toLowerCase()))) domains.set(d, (domains.get(d) ?? 0) + 1);
        continue;
      }
      process.stdout.write(opts.json ? `${JSON.stringify({ ...m, state: st })}\n` : `${line(m, now)}\n`);
    }
    if (opts.json) return;
    if (opts.summary && count > 0) {
      process.stdout.write(['top senders:', ...top(senders, n), 'top recipient domains (messages):', ...top(domains, n)].join('\n') + '\n');
    }
    if (count > 0) process.stdout.write(`held ${states.held}, deferred ${states.deferred}, pending ${states.pending}; ${toGo} recipient(s) to go; ${bytes} bytes\n`);
    process.stdout.write(`${count} message(s) queued\n`);
    // The files are all listed above; the server may still be scheduling them (start-up scan).
    const cat = await serverCatalog(config).catch(() => undefined);
    if (cat && cat.state !== 'loaded') process.stdout.write(`the running server is still loading its queue: ${catalogLine(cat)}\n`);
  });
  queue
    .command('status')
    .description("the running server's queue catalog: loading (how far) or loaded (how long it took)")
    .action(async (_opts, cmd: Command) => {
      const config = configFrom(cmd);
      const cat = await serverCatalog(config);
      if (!cat) throw new CliError(`no server is running on the spool ${config.paths.spool}; "mailward queue list" reads it directly`);
      process.stdout.write(`${catalogLine(cat)}\n`);
    });
  queue
    .command('show <id>')
    .description('show one queued message: envelope and per-recipient state')
    .action((id: string, _opts, cmd: Command) => {
      const config = configFrom(cmd);
      const entry = inspectMessage(config.paths.spool, id);
      if (!entry) throw new CliError(`no queued message ${JSON.stringify(id)}; see "mailward queue list"`);
      if (!entry.ok) throw new CliError(`message ${id} is unreadable: ${entry.problem}`);
      const { envelope: e, states, held } = entry.message;
      const out = [
        `id: ${e.id}`,
        `state: ${messageState(states, held)}`,
        `received: ${new Date(e.receivedAt).toISOString()}`,
        `from: <${e.mailFrom}>`,
        `size: ${e.size}`,
        `client: ${e.client.address}${e.client.proxyPeer ? ` (via proxy ${e.client.proxyPeer})` : ''} helo=${e.client.helo ?? '-'} login=${e.client.login ?? '-'} listener=${e.client.listener}`,
        ...(e.relayReason ? [`relayed because: ${e.relayReason}`] : []),
        ...(e.noBounce ? [`no bounce: ${e.noBounce}`] : []),
        'recipients:',
        ...e.recipients.map((r, i) => {
          const s = states[i];
          const next = s?.status === 'deferred' && s.nextAttemptAt ? ` next=${new Date(s.nextAttemptAt).toISOString()}` : '';
          return `  ${r.address}${r.mailbox && r.mailbox !== r.address ? ` -> ${r.mailbox}` : ''} [${r.transport}] ${s?.status ?? '?'} attempts=${s?.attempts ?? 0}${next}${s?.lastReply ? ` last="${s.lastReply}"` : ''}`;
        }),
      ];
      process.stdout.write(`${out.join('\n')}\n`);
    });
  registerChange(queue, 'hold', 'put messages on hold: they stay queued but are not delivered (postsuper -h)');
  registerChange(queue, 'release', 'release held messages back into the queue (postsuper -H)');
  registerChange(queue, 'delete', 'delete messages from the queue without a bounce (postsuper -d); asks first unless --yes');
  registerChange(queue, 'flush', 'try deferred messages now (postqueue -f); all of them when no ids or filters are given');
  registerChange(queue, 'requeue', 'forget the retry history of deferred messages and try them now (postsuper -r)');
}
