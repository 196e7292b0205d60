// The benchmarks' DNS server in a process of its own, so that answering Mailward's DNSBL, SPF,
// DMARC and MX questions never waits for the benchmark's own work (sampling /proc is slow).
// Run alone it prints {"address": "127.0.0.1:PORT"} and serves until stdin closes or SIGTERM.
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBenchDns } from './mailward.ts';
import { spawnTracked, stopChild } from './procs.ts';

const SELF = fileURLToPath(import.meta.url);

export interface DnsProcess {
  readonly address: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

export async function startDnsProcess(): Promise<DnsProcess> {
  const repo = path.resolve(path.dirname(SELF), '..', '..');
  const child = spawnTracked(process.execPath, ['--import', 'tsx', SELF], { cwd: repo, stdio: ['pipe', 'pipe', 'inherit'] });
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve((JSON.parse(line) as { address: string }).address);
    });
    child.once('exit', (code) => reject(new Error(`the bench DNS server exited with ${String(code)}`)));
  });
  return { address, child, stop: () => stopChild(child) };
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  const dns = await startBenchDns();
  process.stdout.write(`${JSON.stringify({ address: dns.address })}\n`);
  const stop = (): void => {
    void dns.close().then(() => process.exit(0));
  };
  process.stdin.on('end', stop);
  process.stdin.resume();
  process.once('SIGTERM', stop);
}
