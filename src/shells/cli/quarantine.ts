// `mailward quarantine list|show|release|delete`: the kill-level spam the server kept instead of
// delivering. list and show read the spool directly; release and delete go to the running server
// over its control socket, or work on the spool themselves when no server runs. A release also
// teaches the filter the message is ham (it was a false positive); delete --learn-spam confirms spam.
import type { Command } from 'commander';
import type { Config } from '../../config/load.ts';
import { runQueueCommand, type QueueCommandResult } from '../../app/delivery.ts';
import type { QuarantineControlRequest } from '../../queue/control.ts';
import type { InspectedMessage } from '../../queue/inspect.ts';
import { headerValue, inspectQuarantined, listQuarantine, openQuarantined, quarantinedHead, readQuarantined } from '../../queue/quarantine.ts';
import type { Label, SpamFilter } from '../../spam/index.ts';
import { age, olderThanMs } from './age.ts';
import { confirm } from './confirm.ts';
import { CliError, EXIT, configFrom } from './index.ts';
import { createProgress } from './progress.ts';
import { outputOf, withFilter, type CliOutput } from './spam.ts';


/** Streams the quarantined messages; unreadable files are reported on stderr and skipped. */
function* quarantined(config: Config, io: CliOutput): Generator<InspectedMessage> {
  for (const entry of listQuarantine(config.paths.spool)) {
    if (entry.ok) yield entry.message;
    else io.err(`${entry.id}: unreadable (${entry.problem})\n`);
  }
}

const byWhom = (r: QueueCommandResult, what: string): string => (r.via === 'server' ? 'by the running server' : `in the spool (no server running${what})`);

/** Learns each message as `as` before it is released or deleted; returns how many were learned. */
async function learnAll(config: Config, io: CliOutput, ids: readonly string[], as: Label): Promise<{ learned: number; already: number; gone: number }> {
  const counts = { learned: 0, already: 0, gone: 0 };
  const progress = createProgress({ verb: `learned as ${as}`, stream: io.errStream });
  progress.setTotal(ids.length);
  try {
    await withFilter(config, async (filter: SpamFilter) => {
      const batch = filter.batch();
      for (const id of ids) {
        const raw = await readQuarantined(config.paths.spool, id);
        if (!raw) counts.gone++;
        else if ((await batch.learn(raw, as)) === 'already') counts.already++;
        else counts.learned++;
        progress.update(counts.learned + counts.already + counts.gone);
      }
      await batch.flush();
    });
  } finally {
    progress.finish();
  }
  return counts;
}

function receivedBefore(olderThan: string | undefined): number | undefined {
  if (olderThan === undefined) return undefined;
  return Date.now() - olderThanMs(olderThan, '12h, 7d or 30d');
}

/** Ids go to the server in slices, well under the control socket's request limit. */
const ID_SLICE = 10_000;

/** Sends a quarantine command (ids in slices), with a progress line for large ones. */
async function run(config: Config, io: CliOutput, req: QuarantineControlRequest, verb: string, total?: number): Promise<QueueCommandResult> {
  const progress = createProgress({ verb, stream: io.errStream });
  if (total !== undefined) progress.setTotal(total);
  try {
    const slices = req.ids ? Array.from({ length: Math.ceil(req.ids.length / ID_SLICE) }, (_x, i) => ({ ...req, ids: req.ids!.slice(i * ID_SLICE, (i + 1) * ID_SLICE) })) : [req];
    let acc: QueueCommandResult | undefined;
    for (const slice of slices) {
      const before = acc?.changed ?? 0;
      const r = await runQueueCommand(config, slice, (p) => progress.update(before + p.changed));
      acc = acc ? { ...r, matched: acc.matched + r.matched, changed: acc.changed + r.changed, missing: acc.missing + r.missing } : r;
      progress.update(acc.changed);
    }
    return acc!;
  } finally {
    progress.finish();
  }
}

export function registerQuarantine(program: Command): void {
  const q = program.command('quarantine').description('spam kept instead of delivered (score at or above checks.spam.kill): list, show, release, delete');
  q.command('list')
    .description('list quarantined messages: id, age, size, spam score, sender, recipients; then a count')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const io = outputOf(cmd);
      const config = configFrom(cmd);
      const now = Date.now();
      let count = 0;
      let bytes = 0;
      for (const m of quarantined(config, io)) {
        const e = m.envelope;
        const head = await quarantinedHead(config.paths.spool, e.id);
        if (head === undefined) continue; // released or deleted meanwhile
        count++;
        bytes += e.size;
        const score = headerValue(head, 'X-Spam-Score');
        const rcpts = e.recipients.map((r) => r.address);
        if (opts.json) {
          io.out(`${JSON.stringify({ id: e.id, receivedAt: new Date(e.receivedAt).toISOString(), size: e.size, ...(score !== undefined ? { score: Number(score) } : {}), from: e.mailFrom, recipients: rcpts, client: e.client.address })}\n`);
          continue;
        }
        io.out(`${e.id}  ${age(now - e.receivedAt).padStart(4)}  ${String(e.size).padStart(9)}  ${(score ?? '-').padStart(5)}  <${e.mailFrom}>  ${rcpts.join(', ')}\n`);
      }
      if (opts.json) return;
      io.out(`${count} message(s) in quarantine${count > 0 ? `, ${bytes} bytes` : ''}\n`);
    });
  q.command('show')
    .description('show one quarantined message: envelope and header (--body: the whole message)')
    .argument('<id>', 'the queue id, as quarantine list shows it')
    .option('--body', 'print the whole message, not only its header')
    .action(async (id: string, opts: { body?: boolean }, cmd: Command) => {
      const io = outputOf(cmd);
      const config = configFrom(cmd);
      const entry = inspectQuarantined(config.paths.spool, id);
      if (!entry) throw new CliError(`no quarantined message ${JSON.stringify(id)}; see "mailward quarantine list"`);
      if (!entry.ok) throw new CliError(`quarantined message ${id} is unreadable: ${entry.problem}`);
      const e = entry.message.envelope;
      io.out(
        [
          `id: ${e.id}`,
          `received: ${new Date(e.receivedAt).toISOString()}`,
          `from: <${e.mailFrom}>`,
          `size: ${e.size}`,
          `client: ${e.client.address}${e.client.proxyPeer ? ` (via proxy ${e.client.proxyPeer})` : ''} helo=${e.client.helo ?? '-'} login=${e.client.login ?? '-'} listener=${e.client.listener}`,
          'recipients:',
          ...e.recipients.map((r) => `  ${r.address}${r.mailbox && r.mailbox !== r.address ? ` -> ${r.mailbox}` : ''} [${r.transport}]`),
          '',
          '',
        ].join('\n'),
      );
      if (!opts.body) {
        const head = await quarantinedHead(config.paths.spool, id);
        if (head === undefined) throw new CliError(`message ${id} left the quarantine meanwhile (released or deleted)`);
        io.out(head.replace(/\r\n/g, '\n'));
        return;
      }
      try {
        for await (const chunk of openQuarantined(config.paths.spool, id)) io.out((chunk as Buffer).toString('utf8').replace(/\r\n/g, '\n'));
      } catch (err) {
        throw new CliError(`cannot read message ${id}: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  q.command('release')
    .description('deliver quarantined messages after all, and learn them as ham (a false positive)')
    .argument('<ids...>', 'queue ids, as quarantine list shows them')
    .option('--no-learn', 'do not learn them as ham')
    .action(async (ids: string[], opts: { learn: boolean }, cmd: Command) => {
      const io = outputOf(cmd);
      const config = configFrom(cmd);
      // Learned first: once released, the message may be delivered and gone within milliseconds.
      let learned: Awaited<ReturnType<typeof learnAll>> | undefined;
      let learnError: string | undefined;
      if (opts.learn) {
        try {
          learned = await learnAll(config, io, ids, 'ham');
        } catch (err) {
          // The operator asked for the mail to be delivered: learning failing must not stop that.
          learnError = err instanceof Error ? err.message : String(err);
        }
      }
      const res = await run(config, io, { op: 'quarantine-release', ids }, 'released', ids.length);
      io.out(`${res.changed} message(s) released ${byWhom(res, '; delivered when it starts')}${res.missing > 0 ? `; ${res.missing} id(s) not in the quarantine` : ''}\n`);
      if (learned) io.out(`learned as ham: ${learned.learned}${learned.already > 0 ? ` (${learned.already} learned before)` : ''}\n`);
      if (learnError) io.err(`not learned as ham: ${learnError}\n`);
      if (res.changed === 0 && res.missing > 0) throw new CliError('none of these ids is in the quarantine; see "mailward quarantine list"');
    });
  q.command('delete')
    .description('delete quarantined messages (no bounce); asks first unless --yes')
    .argument('[ids...]', 'queue ids, as quarantine list shows them')
    .option('--all', 'every quarantined message')
    .option('--older-than <age>', 'messages received longer ago than this, e.g. 7d')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--learn-spam', 'learn them as spam before they go')
    .action(async (ids: string[], opts: { all?: boolean; olderThan?: string; yes?: boolean; learnSpam?: boolean }, cmd: Command) => {
      const io = outputOf(cmd);
      const config = configFrom(cmd);
      const before = receivedBefore(opts.olderThan);
      if (ids.length > 0 && (opts.all || before !== undefined)) throw new CliError('give ids, or --all / --older-than, not both', EXIT.usage);
      if (ids.length === 0 && !opts.all && before === undefined) throw new CliError('say which messages: ids, --older-than AGE, or --all', EXIT.usage);
      // With --learn-spam every message is read anyway: select them here and delete exactly those,
      // so one quarantined meanwhile is not deleted unlearned.
      let selected: string[] | undefined = ids.length > 0 ? ids : undefined;
      if (!selected && (opts.learnSpam || !opts.yes)) {
        selected = [];
        for (const m of quarantined(config, io)) if (before === undefined || m.envelope.receivedAt < before) selected.push(m.envelope.id);
        if (selected.length === 0) {
          io.out('no matching messages\n');
          return;
        }
      }
      if (!opts.yes && !(await confirm(`delete ${selected!.length} quarantined message(s)? [y/N] `, (t) => io.err(t)))) {
        io.out('nothing deleted\n');
        return;
      }
      const learned = opts.learnSpam ? await learnAll(config, io, selected!, 'spam') : undefined;
      const r =
        opts.learnSpam || ids.length > 0
          ? await run(config, io, { op: 'quarantine-delete', ids: selected! }, 'deleted', selected!.length)
          : await run(config, io, { op: 'quarantine-delete', ...(before !== undefined ? { receivedBefore: before } : { all: true }) }, 'deleted', selected?.length);
      io.out(`${r.changed} message(s) deleted ${byWhom(r, '')}${ids.length > 0 && r.missing > 0 ? `; ${r.missing} id(s) not in the quarantine` : ''}\n`);
      if (learned) io.out(`learned as spam: ${learned.learned}${learned.already > 0 ? ` (${learned.already} learned before)` : ''}\n`);
      if (ids.length > 0 && r.changed === 0 && r.missing > 0) throw new CliError('none of these ids is in the quarantine; see "mailward quarantine list"');
    });
}
