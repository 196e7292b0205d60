// One measured load: smtp-source (Postfix's parallel SMTP client, none of ours) sends `count`
// messages of `size` bytes over `sessions` parallel sessions, one message per connection as an
// MX sees it, and we time it from start to exit.
import { spawnTracked } from './procs.ts';
import { CLIENT_HELO, RECIPIENT, SENDER } from './mailward.ts';

export interface Load {
  readonly port: number;
  readonly size: number;
  readonly sessions: number;
  readonly count: number;
  /** Source address to connect from (127.0.0.1 unless told). */
  readonly host?: string;
}

export interface LoadResult {
  readonly count: number;
  readonly seconds: number;
  readonly perSecond: number;
}

export function smtpSource(load: Load): Promise<LoadResult> {
  // -M: the HELO name (a real FQDN, so the HELO check passes); -f/-t: envelope and header From/To.
  const args = ['-s', String(load.sessions), '-m', String(load.count), '-l', String(load.size), '-M', CLIENT_HELO, '-f', SENDER, '-t', RECIPIENT, `${load.host ?? '127.0.0.1'}:${load.port}`];
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawnTracked('smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      // smtp-source stops at the first unexpected reply: any failure is loud, never a quiet loss.
      if (code !== 0) reject(new Error(`smtp-source ${args.join(' ')} failed (${String(code)}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
      else resolve({ count: load.count, seconds, perSecond: load.count / seconds });
    });
  });
}
