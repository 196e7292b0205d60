// The parts of a running server that a config reload (SIGHUP) replaces without dropping a
// connection: the compiled check lists (and their options), the relay networks, the limits on
// login guessing. New sessions pick them up; sessions under way finish with what they began
// with. Every other setting needs a restart, and a reload says which.
import type { Resolver } from 'node:dns/promises';
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import { ALL_CHECKS } from '../checks/index.ts';
import { createRelayPolicy, type RelayPolicy } from '../checks/relay.ts';
import type { SpamCheckOptions } from '../checks/spam.ts';
import { spamSettings } from './spam-filter.ts';
import { compilePipeline, createRegistry, type CompiledPipeline } from '../pipeline/registry.ts';
import type { CheckEnv, LocalDirectory } from '../pipeline/check.ts';
import type { Store } from '../store/store.ts';
import { AuthGuard } from '../ingress/auth-guard.ts';
import { withTunnelGuard, type TunnelDetector } from '../doctor/tunnel.ts';

export interface LiveState {
  readonly config: Config;
  readonly pipeline: CompiledPipeline;
  readonly relay: RelayPolicy;
  readonly authGuard: AuthGuard;
  /** checks.spam thresholds the sessions classify with (always set: every check's points count). */
  readonly content: SpamCheckOptions;
}

export interface Shared {
  readonly log: Logger;
  readonly clock: () => number;
  readonly dns: Resolver;
  readonly store: Store;
  readonly directory: LocalDirectory;
  readonly tunnels: TunnelDetector;
}

/** Builds the live parts; throws ConfigError when a check refuses its options. */
export function buildLive(config: Config, shared: Shared): LiveState {
  const env: CheckEnv = { log: shared.log, clock: shared.clock, hostname: config.hostname, domains: config.domains, recipientDelimiter: config.recipientDelimiter, directory: shared.directory, dns: shared.dns, store: shared.store, trustedNetworks: config.relay.trustedNetworks, ...(config.dmarcReports.send.enabled ? { dmarcReports: { intervalMs: config.dmarcReports.send.interval } } : {}) };
  const pipeline = compilePipeline(config, createRegistry(ALL_CHECKS), env);
  // A trusted network stops counting for an address that looks like a collapsed tunnel.
  const relay = withTunnelGuard(createRelayPolicy(config.relay.trustedNetworks), shared.tunnels);
  const a = config.auth;
  const authGuard = new AuthGuard(shared.store, { maxFailures: a.maxFailures, maxNetworkFailures: a.maxNetworkFailures, maxLoginFailures: a.maxLoginFailures, delayMs: a.delay, maxDelayMs: a.maxDelay, windowMs: a.window, blockMs: a.block }, shared.log);
  return { config, pipeline, relay, authGuard, content: spamSettings(config) };
}

/** Top-level settings that differ between two configs but take effect only after a restart. */
export function needsRestart(old: Config, next: Config): string[] {
  const live = new Set(['source', 'pipeline', 'checks', 'relay', 'auth', 'checkTimeoutMs', 'warnings']);
  const json = (v: unknown): string => JSON.stringify(v);
  const out: string[] = [];
  for (const key of Object.keys(old) as Array<keyof Config>) {
    if (live.has(key)) continue;
    if (key === 'listeners') {
      // The check lists of a listener reload; everything else about it needs a restart.
      const strip = (c: Config): string => json(c.listeners.map(({ pipeline: _p, ...rest }) => rest));
      if (strip(old) !== strip(next)) out.push('listeners');
      continue;
    }
    if (json(old[key]) !== json(next[key])) out.push(key);
  }
  // The login hashing threads are made once at start.
  for (const k of ['hashThreads', 'hashQueue'] as const) if (old.auth[k] !== next.auth[k]) out.push(`auth.${k}`);
  return out;
}
