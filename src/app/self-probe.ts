// The relay self-probe (config selfProbe): the server runs the relay-test battery against its
// own listeners (over loopback, as a tunnel's traffic arrives) and against the public addresses
// the operator lists, shortly after start, every `interval`, and after each reload. When any
// unauthenticated trick is accepted it raises an alarm on the guard's channels (log, webhook,
// postmaster mail) and sets mailward_self_probe_relayed: a config change that opens the relay
// is found within minutes, not by the first spammer.
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import type { GuardAlert } from '../guard/alerts.ts';
import { runRelayTest, RelayTestError, type RelayTestOptions, type TlsMode } from './relay-test.ts';

export interface ProbeTarget {
  /** "mx", "submission" or "public 203.0.113.5:25". */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
}

export interface SelfProbeDeps {
  /** The config in force now (a reload swaps it). */
  readonly config: () => Config;
  /** The own listeners as bound: name, address, port. */
  readonly listeners: () => ReadonlyArray<{ readonly name: string; readonly address: string; readonly port: number; readonly implicitTls: boolean }>;
  readonly log: Logger;
  readonly raise: (a: GuardAlert) => Promise<void>;
  readonly clock: () => number;
  /** Accepted tricks per target, for the metric. */
  readonly observe?: (target: string, relayed: number) => void;
}

export interface SelfProbe {
  /** Runs the probe now (queued behind a run under way); resolves when that run ends. */
  run(why: 'start' | 'schedule' | 'reload'): Promise<void>;
  stop(): Promise<void>;
}

/** A listener bound to every address is probed on loopback, where a tunnel's traffic lands. */
const probeHost = (address: string): string => (address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address);

export function probeTargets(config: Config, listeners: ReturnType<SelfProbeDeps['listeners']>): ProbeTarget[] {
  return [
    ...listeners.map((l): ProbeTarget => ({ name: l.name, host: probeHost(l.address), port: l.port, tls: l.implicitTls ? 'implicit' : 'none' })),
    ...config.selfProbe.targets.map((t) => ({ name: `public ${t.host}:${t.port}`, host: t.host, port: t.port, tls: t.tls })),
  ];
}

export function startSelfProbe(d: SelfProbeDeps): SelfProbe {
  let running: Promise<void> = Promise.resolve();
  let again: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const once = async (why: string): Promise<void> => {
    const config = d.config();
    if (!config.selfProbe.enabled) return;
    const local = config.domains[0] ?? config.hostname;
    // A foreign domain that is surely not ours (RFC 2606 names; never resolved by the battery).
    const foreign = ['example.net', 'example.com'].find((x) => !config.domains.includes(x)) ?? 'relay-probe.invalid';
    const found: string[] = [];
    for (const t of probeTargets(config, d.listeners())) {
      if (stopped) return;
      const o: RelayTestOptions = { host: t.host, port: t.port, tls: t.tls, localDomain: local, foreignDomain: foreign, helo: `self-probe.${config.hostname}`, timeoutMs: config.selfProbe.timeout, verifyTls: false };
      try {
        const report = await runRelayTest(o);
        const tricks = report.attempts.filter((a) => !a.authenticated && a.verdict === 'relayed').map((a) => a.name);
        d.observe?.(t.name, tricks.length);
        d.log.info({ event: 'self-probe', why, target: t.name, address: report.target, openRelay: report.openRelay, ...report.counts, ...(tricks.length ? { accepted: tricks } : {}) }, report.result);
        if (report.openRelay) found.push(`${t.name} (${report.target}) accepted ${tricks.join(', ')}`);
      } catch (err) {
        const msg = err instanceof RelayTestError || err instanceof Error ? err.message : String(err);
        d.log.warn({ event: 'self-probe', why, target: t.name, address: `${t.host}:${t.port}`, error: msg }, `the relay self-probe of ${t.name} could not run: ${msg}`);
      }
    }
    if (found.length === 0) return;
    await d.raise({
      state: 'alarm',
      name: 'relay-self-probe',
      kind: 'open-relay',
      reason: `OPEN RELAY: relay tricks were accepted without a login: ${found.join('; ')}`,
      figures: {
        why,
        fix: 'find the setting that trusts the probe (relay.trustedNetworks, a listener\'s proxy.trusted, a permit in the pipeline), remove it, systemctl reload mailward; check with: mailward relay-test HOST:PORT',
      },
      at: d.clock(),
    });
  };

  const run = (why: 'start' | 'schedule' | 'reload'): Promise<void> => {
    // One run at a time; requests during a run fold into one run after it.
    again ??= running.then(() => {
      again = undefined;
      running = once(why).catch((err: unknown) => d.log.error({ event: 'self-probe', why, error: String(err) }, 'the relay self-probe failed'));
      return running;
    });
    return again;
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void run('schedule').finally(schedule);
    }, d.config().selfProbe.interval);
    timer.unref();
  };
  schedule();

  return {
    run,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
