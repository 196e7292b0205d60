// `mailward queue list|show`: what is queued, read straight from the spool (works while the
// server runs; nothing is changed).
import type { Command } from 'commander';
import { inspectMessage, inspectSpool, type InspectedMessage } from '../../queue/inspect.ts';
import { CliError, configFrom } from './index.ts';

function line(m: InspectedMessage): string {
  const e = m.envelope;
  const pending = m.states.filter((s) => s.status === 'pending' || s.status === 'deferred').length;
  const age = Math.round((Date.now() - e.receivedAt) / 60_000);
  return `${e.id}  ${String(e.size).padStart(9)}  ${age}m  <${e.mailFrom}>  ${pending}/${e.recipients.length} to go`;
}

export function registerQueue(program: Command): void {
  const queue = program.command('queue').description('inspect the mail queue');
  queue
    .command('list')
    .description('list queued messages: id, size, age, sender, recipients still to deliver')
    .option('--json', 'one JSON object per line')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      let count = 0;
      for (const entry of inspectSpool(config.paths.spool)) {
        if (!entry.ok) {
          process.stderr.write(`${entry.id}: unreadable (${entry.problem})\n`);
          continue;
        }
        count++;
        process.stdout.write(opts.json ? `${JSON.stringify(entry.message)}\n` : `${line(entry.message)}\n`);
      }
      if (!opts.json) process.stdout.write(`${count} message(s) queued\n`);
    });
  queue
    .command('show <id>')
    .description('show one queued message: envelope and per-recipient state')
    .action((id: string, _opts, cmd: Command) => {
      const config = configFrom(cmd);
      const entry = inspectMessage(config.paths.spool, id);
      if (!entry) throw new CliError(`no queued message ${JSON.stringify(id)}; see "mailward queue list"`);
      if (!entry.ok) throw new CliError(`message ${id} is unreadable: ${entry.problem}`);
      const { envelope: e, states } = entry.message;
      const out = [
        `id: ${e.id}`,
        `received: ${new Date(e.receivedAt).toISOString()}`,
        `from: <${e.mailFrom}>`,
        `size: ${e.size}`,
        `client: ${e.client.address}${e.client.proxyPeer ? ` (via proxy ${e.client.proxyPeer})` : ''} helo=${e.client.helo ?? '-'} login=${e.client.login ?? '-'} listener=${e.client.listener}`,
        ...(e.relayReason ? [`relayed because: ${e.relayReason}`] : []),
        'recipients:',
        ...e.recipients.map((r, i) => {
          const s = states[i];
          return `  ${r.address}${r.mailbox && r.mailbox !== r.address ? ` -> ${r.mailbox}` : ''} [${r.transport}] ${s?.status ?? '?'} attempts=${s?.attempts ?? 0}${s?.lastReply ? ` last="${s.lastReply}"` : ''}`;
        }),
      ];
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
