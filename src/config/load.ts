// Reads the one config file (YAML), validates it against the schema and the invariants, fills
// per-listener defaults and resolves paths, and returns a deep-frozen Config. This is the only
// module that reads config files or the environment.
import type { AcmeSettings } from './acme-schema.ts';
import { readFileSync, existsSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigSchema, DEFAULT_PIPELINE, STAGES, type ListenerKind, type PipelineEntry, type RawConfig, type Stage } from './schema.ts';
import { ConfigError, type ConfigProblem, pathText, showValue } from './errors.ts';
import { checkInvariants, localTrustProblems } from './invariants.ts';

export interface ListenerConfig {
  readonly name: string;
  readonly kind: ListenerKind;
  readonly host: string;
  readonly port: number;
  readonly implicitTls: boolean;
  readonly starttls: boolean;
  readonly auth: boolean;
  readonly requireAuth: boolean;
  readonly requireTls: boolean;
  /** Offer REQUIRETLS (RFC 8689) in the EHLO reply once the session is TLS-protected. */
  readonly advertiseRequireTls: boolean;
  readonly greetingDelayMs: number;
  readonly proxyTrusted: readonly string[];
  readonly pipeline: Readonly<Record<Stage, readonly PipelineEntry[]>>;
}

export interface Config {
  /** Where the config came from: a file path, or "built-in default". */
  readonly source: string;
  readonly hostname: string;
  readonly domains: readonly string[];
  readonly dataDir: string;
  /** Run as this user (and group) when started as root; see app/privileges.ts. */
  readonly user?: string;
  readonly group?: string;
  /** Acceptor processes ("auto": one per core); see compose.ts workerCount. */
  readonly workers: RawConfig['workers'];
  readonly paths: { readonly spool: string; readonly mail: string; readonly tls: string; readonly acme: string; readonly directory: string; readonly store: string; readonly srsKeys: string };
  readonly log: RawConfig['log'];
  readonly tls: { readonly cert?: string; readonly key?: string; readonly acme?: AcmeSettings };
  /** Enabled listeners only. */
  readonly listeners: readonly ListenerConfig[];
  readonly limits: RawConfig['limits'];
  readonly relay: RawConfig['relay'];
  readonly recipientDelimiter: string;
  readonly checkTimeoutMs: number;
  readonly checks: Readonly<Record<string, unknown>>;
  readonly queue: RawConfig['queue'];
  readonly store: RawConfig['store'];
  readonly dns: RawConfig['dns'];
  readonly delivery: RawConfig['delivery'];
  readonly mtaSts: RawConfig['mtaSts'];
  readonly reports: RawConfig['reports'];
  readonly dmarcReports: RawConfig['dmarcReports'];
  readonly tlsReports: RawConfig['tlsReports'];
  readonly auth: RawConfig['auth'];
  readonly recipients: RawConfig['recipients'];
  readonly selfProbe: RawConfig['selfProbe'];
  readonly hygiene: RawConfig['hygiene'];
  readonly admin: RawConfig['admin'];
  /** Local submission (`mailward sendmail`); `socket` is absolute. */
  readonly sendmail: RawConfig['sendmail'];
  /** forwarding.srs with its domain resolved (default: the first of `domains`), lower case. */
  readonly forwarding: { readonly junk: 'not-forwarded' | 'forwarded'; readonly srs: { readonly enabled: boolean; readonly domain: string; readonly maxAge: number } };
  /** Risks the config acknowledges (relay.allowLocalTrust): logged at every start and reload, shown on the dashboard. */
  readonly warnings: readonly ConfigProblem[];
}

export const BUILT_IN = 'built-in default';

/** Loads `file`; when `file` is undefined, ./mailward.yaml if it exists, else the built-in default. */
export function loadConfig(file?: string, overrides?: (raw: Record<string, unknown>) => void): Config {
  let source = BUILT_IN;
  let text: string | undefined;
  if (file !== undefined) {
    source = file;
    if (!existsSync(file)) {
      throw new ConfigError(file, [{ path: '', message: `the file ${showValue(file)} does not exist`, fix: 'give the path of your config file with --config, or run without --config to use ./mailward.yaml or the built-in default' }]);
    }
    text = readFileSync(file, 'utf8');
  } else if (existsSync('mailward.yaml')) {
    source = 'mailward.yaml';
    text = readFileSync(source, 'utf8');
  }
  const raw = text === undefined ? {} : parseYaml(text, source);
  overrides?.(raw);
  const baseDir = source === BUILT_IN ? process.cwd() : path.dirname(path.resolve(source));
  return buildConfig(raw, source, baseDir);
}

/** Validates an already-parsed object (used by tests and by loadConfig). */
export function buildConfig(input: unknown, source: string, baseDir: string): Config {
  const parsed = ConfigSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) throw new ConfigError(source, parsed.error.issues.map(issueToProblem));
  const raw = parsed.data;
  const problems = checkInvariants(raw);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(resolve(raw, source, baseDir));
}

/** The settings of a config file as written, before any check: for tools that judge a config the server would refuse (relay-test --config). */
export function readConfigFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new ConfigError(file, [{ path: '', message: `the file ${showValue(file)} does not exist`, fix: 'give the path of your config file with --config' }]);
  return parseYaml(readFileSync(file, 'utf8'), file);
}

function parseYaml(text: string, source: string): Record<string, unknown> {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({ path: '', message: `YAML syntax error: ${(e.message.split('\n')[0] ?? e.message).replace(/:\s*$/, '')}`, fix: 'correct the YAML at the line and column shown' })),
    );
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(source, [{ path: '', message: `the file holds ${showValue(value)}, not a mapping of settings`, fix: 'start the file with settings such as "domains: [example.org]"' }]);
  }
  return value as Record<string, unknown>;
}

function issueToProblem(issue: z.core.$ZodIssue): ConfigProblem {
  const p = pathText(issue.path);
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const keys = issue.keys;
      const where = p === '' ? '' : `${p}.`;
      return {
        path: `${where}${keys[0] ?? ''}`,
        message: `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`,
        fix: `remove ${keys.length > 1 ? 'them' : 'it'} or correct the spelling; the known keys are in examples/mailward.yaml`,
      };
    }
    case 'invalid_type':
      return { path: p, message: `expected ${issue.expected}, got ${showValue(input)}`, fix: `write a ${issue.expected} here` };
    case 'invalid_value':
      return { path: p, message: `${showValue(input)} is not allowed`, fix: `use one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}` };
    case 'too_small':
      return { path: p, message: `${showValue(input)} is too small (minimum ${String(issue.minimum)})`, fix: `use at least ${String(issue.minimum)}` };
    case 'too_big':
      return { path: p, message: `${showValue(input)} is too big (maximum ${String(issue.maximum)})`, fix: `use at most ${String(issue.maximum)}` };
    case 'invalid_union':
      return { path: p, message: `${showValue(input)} has the wrong form`, fix: 'see examples/mailward.yaml for the forms this setting takes' };
    case 'custom': {
      const fix = (issue.params as { fix?: string } | undefined)?.fix;
      return { path: p, message: issue.message, fix: fix ?? 'see examples/mailward.yaml for the form this setting takes' };
    }
    default:
      return { path: p, message: `${issue.message} (got ${showValue(input)})`, fix: 'see examples/mailward.yaml for the form this setting takes' };
  }
}

const KIND_DEFAULTS: Record<ListenerKind, { implicitTls: boolean; starttls: boolean; auth: boolean; requireAuth: boolean; requireTls: boolean }> = {
  mx: { implicitTls: false, starttls: true, auth: false, requireAuth: false, requireTls: false },
  submission: { implicitTls: false, starttls: true, auth: true, requireAuth: true, requireTls: true },
  submissions: { implicitTls: true, starttls: false, auth: true, requireAuth: true, requireTls: false },
};

function resolve(raw: RawConfig, source: string, baseDir: string): Config {
  const dataDir = path.resolve(baseDir, raw.dataDir);
  const abs = (p: string): string => path.resolve(baseDir, p);
  const globalPipeline = Object.fromEntries(STAGES.map((s) => [s, raw.pipeline[s] ?? DEFAULT_PIPELINE[s]])) as Record<Stage, PipelineEntry[]>;
  const listeners: ListenerConfig[] = Object.entries(raw.listeners)
    .filter(([, l]) => l.enabled)
    .map(([name, l]) => {
      const d = KIND_DEFAULTS[l.kind];
      const auth = l.auth ?? d.auth;
      return {
        name,
        kind: l.kind,
        host: l.host,
        port: l.port,
        implicitTls: d.implicitTls,
        starttls: l.starttls ?? d.starttls,
        auth,
        requireAuth: l.requireAuth ?? (auth && d.requireAuth),
        requireTls: l.requireTls ?? d.requireTls,
        advertiseRequireTls: l.advertiseRequireTls,
        greetingDelayMs: l.greetingDelay ?? 0,
        proxyTrusted: l.proxy.trusted,
        pipeline: Object.fromEntries(STAGES.map((s) => [s, l.pipeline?.[s] ?? globalPipeline[s]])) as Record<Stage, PipelineEntry[]>,
      };
    });
  const tls: { cert?: string; key?: string; acme?: AcmeSettings } = {};
  if (raw.tls.cert) tls.cert = abs(raw.tls.cert);
  if (raw.tls.key) tls.key = abs(raw.tls.key);
  if (raw.tls.acme) tls.acme = { ...raw.tls.acme, ...(raw.tls.acme.directoryCa ? { directoryCa: abs(raw.tls.acme.directoryCa) } : {}) };
  return {
    source,
    hostname: raw.hostname ?? osHostname(),
    domains: [...new Set(raw.domains.map((d) => d.toLowerCase().replace(/\.$/, '')))],
    dataDir,
    ...(raw.user !== undefined ? { user: raw.user } : {}),
    ...(raw.group !== undefined ? { group: raw.group } : {}),
    workers: raw.workers,
    paths: {
      spool: path.join(dataDir, 'spool'),
      mail: path.join(dataDir, 'mail'),
      tls: path.join(dataDir, 'tls'),
      // ACME account key and certificate (tls.acme), 0600 in a 0700 folder.
      acme: path.join(dataDir, 'tls', 'acme'),
      directory: path.join(dataDir, 'directory.sqlite'),
      srsKeys: path.join(dataDir, 'srs-keys'),
      store: raw.store.sqlite.path ? abs(raw.store.sqlite.path) : path.join(dataDir, 'state.sqlite'),
    },
    log: raw.log,
    tls,
    listeners,
    limits: raw.limits,
    relay: raw.relay,
    recipientDelimiter: raw.recipientDelimiter,
    checkTimeoutMs: raw.checkTimeout,
    checks: raw.checks,
    queue: raw.queue,
    store: raw.store,
    dns: raw.dns,
    delivery: raw.delivery,
    mtaSts: raw.mtaSts,
    reports: raw.reports,
    dmarcReports: raw.dmarcReports,
    tlsReports: raw.tlsReports,
    auth: raw.auth,
    recipients: raw.recipients,
    selfProbe: raw.selfProbe,
    hygiene: raw.hygiene,
    admin: { ...raw.admin, ...(raw.admin.tokenFile ? { tokenFile: abs(raw.admin.tokenFile) } : {}) },
    // Under the shipped systemd unit (RuntimeDirectory=mailward) systemd names /run/mailward in
    // RUNTIME_DIRECTORY: the default socket goes there, where every local user reaches it and
    // where `mailward sendmail` looks first; elsewhere it stays in dataDir.
    sendmail: { ...raw.sendmail, socket: path.resolve(runtimeDirectory() ?? dataDir, raw.sendmail.socket) },
    forwarding: { junk: raw.forwarding.junk, srs: { ...raw.forwarding.srs, domain: (raw.forwarding.srs.domain ?? raw.domains[0] ?? 'localhost').toLowerCase().replace(/\.$/, '') } },
    warnings: raw.relay.allowLocalTrust === undefined ? [] : localTrustProblems(raw),
  };
}

/** systemd's RuntimeDirectory= folder of this service (the first, when several are named). */
function runtimeDirectory(): string | undefined {
  const first = process.env.RUNTIME_DIRECTORY?.split(':')[0];
  return first && path.isAbsolute(first) ? first : undefined;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
