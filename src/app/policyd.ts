// Builds the policy service from the config: the same directory, state store, DNS resolver and
// checks the server uses (so greylisting state and options are shared), compiled per Postfix
// protocol state, behind one decision engine. Listening is the shell's job (shells/policyd.ts).
import type { Config } from '../config/load.ts';
import type { PolicydConfig } from '../config/policyd-schema.ts';
import { ALL_CHECKS } from '../checks/index.ts';
import type { Logger } from '../observe/log.ts';
import { silentLogger } from '../observe/log.ts';
import type { CheckEnv } from '../pipeline/check.ts';
import { createRegistry } from '../pipeline/registry.ts';
import { actionSettings } from '../policyd/action.ts';
import { compilePolicyPipeline, describePolicy } from '../policyd/compile.ts';
import { createPolicyEngine, type PolicyEngine } from '../policyd/engine.ts';
import { openStore } from './store.ts';
import type { Store } from '../store/store.ts';
import { prepareDataDir } from './preflight.ts';
import { openDirectory } from './accounts.ts';
import { createResolver } from './compose.ts';
import { writeBehindStore } from '../policyd/write-behind.ts';

export interface PolicyService {
  readonly engine: PolicyEngine;
  readonly store: Store;
  close(): Promise<void>;
}

export interface PolicyServiceOptions {
  readonly log?: Logger;
  /** Milliseconds since the epoch; tests move their own. */
  readonly clock?: () => number;
}

export async function createPolicyService(config: Config, policyd: PolicydConfig, opts: PolicyServiceOptions = {}): Promise<PolicyService> {
  const log = opts.log ?? silentLogger();
  const clock = opts.clock ?? Date.now;
  prepareDataDir(config);
  const directory = openDirectory(config);
  let store: Store | undefined;
  try {
    const opened0 = await openStore(config, log);
    // Greylisting reads and writes from memory, flushed to SQLite in batches (decision 0041).
    // Off with Redis: several nodes share it and must see each other's triplets at once.
    store = opened0.backend === 'sqlite' ? writeBehindStore(opened0, { prefix: 'greylist:', log, clock }) : opened0;
    const env: CheckEnv = { log, clock, hostname: config.hostname, domains: config.domains, recipientDelimiter: config.recipientDelimiter, directory, dns: createResolver(config), store };
    const policy = compilePolicyPipeline(config, policyd.pipeline, createRegistry(ALL_CHECKS), env);
    const engine = createPolicyEngine({
      policy,
      actions: actionSettings(policyd.actions),
      kinds: { listenerKind: policyd.listenerKind, policyContexts: policyd.policyContexts, serverPorts: policyd.serverPorts },
      log,
      postmasterDomain: config.domains[0] ?? config.hostname,
      clock,
    });
    log.info({ event: 'policyd-checks', checks: describePolicy(policy), store: config.store.backend }, 'policy service checks compiled');
    const opened = store;
    return {
      engine,
      store: opened,
      async close() {
        await opened.close();
        directory.close();
      },
    };
  } catch (err) {
    await store?.close();
    directory.close();
    throw err;
  }
}
