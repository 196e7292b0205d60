// smtp-sink (from the postfix package): answers the SMTP dialogue and throws the mail away, so
// its rate is the ceiling of the protocol loop (client, kernel, loopback) on this machine.
import type { ChildProcess } from 'node:child_process';
import { freePort, spawnTracked, stopChild, waitForSmtp } from './procs.ts';

export interface SinkInstance {
  readonly name: 'smtp-sink';
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  delivered(): number;
  stop(): Promise<void>;
}

export async function startSink(): Promise<SinkInstance> {
  const port = await freePort();
  // -u: smtp-sink refuses to run as root without a user to switch to.
  const args = [...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), '-h', 'sink.example.org', `127.0.0.1:${port}`, '1024'];
  const child = spawnTracked('smtp-sink', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForSmtp(port, 10_000, 'smtp-sink');
  return { name: 'smtp-sink', port, pid: child.pid!, child, delivered: () => 0, stop: () => stopChild(child) };
}
