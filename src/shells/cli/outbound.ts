// `mailward outbound stop|start|status`: "stop all outbound" from the command line (the dashboard's
// switch): mail to other servers stays queued, local delivery goes on.
import type { Command } from 'commander';
import { userInfo } from 'node:os';
import { outboundCommand } from '../../app/outbound.ts';
import type { OutboundState } from '../../delivery/outbound-switch.ts';
import { configFrom } from './index.ts';

function operatorName(): string {
  const u = userInfo();
  return `cli ${u.username} (uid ${u.uid})`;
}

export function describeOutbound(s: OutboundState): string {
  const when = s.since ? ` since ${new Date(s.since).toISOString()}` : '';
  const who = s.by ? ` by ${s.by}` : '';
  return s.stopped ? `outbound: STOPPED${when}${who}${s.reason ? ` (${s.reason})` : ''}; mail to other servers stays queued, local delivery goes on` : `outbound: flowing${when}${who}`;
}

export function registerOutbound(program: Command): void {
  const o = program.command('outbound').description('"stop all outbound": keep all mail to other servers queued (local delivery goes on)');
  const run = async (action: 'stop' | 'start' | 'status', cmd: Command, reason?: string): Promise<void> => {
    const r = await outboundCommand(configFrom(cmd), action, operatorName(), reason);
    const where = r.via === 'server' ? ' (the running server)' : ' (no server running: the state file, which the next start obeys)';
    process.stdout.write(`${describeOutbound(r.state)}${where}\n`);
  };
  o.command('stop')
    .description('stop all outbound mail now; it stays queued until "mailward outbound start"')
    .option('--reason <text>', 'why (logged and shown in the dashboard)')
    .action((opts: { reason?: string }, cmd: Command) => run('stop', cmd, opts.reason));
  o.command('start')
    .description('let outbound mail flow again; the queued mail is tried at once')
    .action((_opts, cmd: Command) => run('start', cmd));
  o.command('status')
    .description('whether outbound mail is stopped, since when and by whom')
    .action((_opts, cmd: Command) => run('status', cmd));
}
