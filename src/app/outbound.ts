// `mailward outbound stop|start|status`: the running server's switch over its control socket, or,
// when no server runs, the persisted state in dataDir, which the next start obeys.
import { mkdir } from 'node:fs/promises';
import type { Config } from '../config/load.ts';
import { controlOutbound } from '../queue/control.ts';
import { spoolOwner } from '../queue/lock.ts';
import { readOutboundState, writeOutboundState, type OutboundState } from '../delivery/outbound-switch.ts';

export interface OutboundAnswer {
  readonly state: OutboundState;
  /** Who answered: the running server, or the state file (no server running). */
  readonly via: 'server' | 'file';
}

export async function outboundCommand(config: Config, action: 'stop' | 'start' | 'status', operator: string, reason?: string): Promise<OutboundAnswer> {
  const dir = config.paths.spool;
  if ((await spoolOwner(dir)) !== undefined) {
    const state = await controlOutbound(dir, { op: 'outbound', action, operator, ...(reason ? { reason } : {}) });
    if (!state) throw new Error(`a server holds the spool ${dir} but does not answer on its control socket; try again, or look at its log`);
    return { state, via: 'server' };
  }
  if (action === 'status') return { state: readOutboundState(config.dataDir), via: 'file' };
  const state: OutboundState = { stopped: action === 'stop', since: Date.now(), by: operator, ...(reason ? { reason } : {}) };
  // A server never started here: the folder it will use (0700, as its start-up makes it).
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  await writeOutboundState(config.dataDir, state);
  return { state, via: 'file' };
}
