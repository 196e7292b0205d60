// Builds outbound delivery from the config: the transports the worker uses (`local`: Maildir;
// `remote`: the router over smarthosts, direct MX and local routes, with DKIM signing), the
// bouncer, and the control socket through which `mailward queue ...` reaches a running server.
// Also the CLI's way in: run a queue command on the server, or on the spool when none runs.
import { srsFromConfig } from './srs-keys.ts';
import { readFileSync, statSync } from 'node:fs';
import type { Resolver } from 'node:dns/promises';
import path from 'node:path';
import type { Config } from '../config/load.ts';
import { BUILT_IN } from '../config/load.ts';
import { ConfigError } from '../config/errors.ts';
import type { Logger } from '../observe/log.ts';
import { silentLogger } from '../observe/log.ts';
import type { LocalDirectory } from '../pipeline/check.ts';
import { Spool } from '../queue/spool.ts';
import type { LoadProgress, Queue } from '../queue/queue.ts';
import type { EnvelopeRecipient } from '../queue/envelope.ts';
import { QueueAdmin, type AdminResult, type QueueSummary } from '../queue/admin.ts';
import type { QueueFilter } from '../queue/filter.ts';
import { controlRequest, controlStatus, controlSummary, ControlUnavailableError, isQuarantineRequest, quarantineOpOf, startControlServer, type CatalogState, type ControlRequest, type OutboundSwitchHandle, type ControlServer } from '../queue/control.ts';
import { QuarantineAdmin } from '../queue/quarantine.ts';
import { spoolOwner } from '../queue/lock.ts';
import { buildLocalTransport } from './local-delivery.ts';
import { readingReports, reportReaderFor } from './dmarc-inbox.ts';
import type { GuardAlert } from '../guard/alerts.ts';
import type { Transport } from '../delivery/transport.ts';
import { MxTransport } from '../delivery/mx.ts';
import { SmarthostTransport } from '../delivery/smarthost.ts';
import { Router, RouteTable } from '../delivery/router.ts';
import { Bouncer } from '../delivery/dsn.ts';
import { DkimKeyError, DkimKeys } from '../delivery/dkim-sign.ts';
import type { SmtpClientOptions } from '../delivery/smtp-client.ts';
import type { Store } from '../store/store.ts';
import { MtaStsPolicies, trustedCas } from '../delivery/tls-policy/mta-sts.ts';
import { DaneResolver } from '../delivery/tls-policy/dane.ts';
import { sendTlsReports, StoreTlsCounter, type ReportRun } from '../delivery/tls-policy/tls-rpt.ts';

export { dkimKeyFiles, dkimRecordValue, dkimZoneRecord, generateDkimKey, keyFileName, SELECTOR_RE, isDkimDomain, type DkimKeyType } from '../delivery/dkim-sign.ts';

export interface DeliveryDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly spool: Spool;
  readonly store: Store;
  readonly dns: Resolver;
  /** Local mailboxes and aliases: where a bounce to a local sender goes. */
  readonly directory?: LocalDirectory;
  /** The live schedule, for operator commands over the control socket. */
  readonly queue?: Queue;
  /**
   * Wraps each transport that hands mail to another server (mx, every smarthost), e.g. with the
   * outbound guard; routes to `local` are never wrapped.
   */
  readonly wrapOutbound?: (transport: Transport, route: string) => Transport;
  /** "Stop all outbound", for `mailward outbound` over the control socket. */
  readonly outbound?: OutboundSwitchHandle;
  /** The guard's alert channels, for the alerts of received reports (reports.alertNewFailures). */
  readonly raise?: (a: GuardAlert) => Promise<void>;
}

export interface Delivery {
  /** By recipient transport name, for the worker. */
  readonly transports: Record<string, Transport>;
  readonly bouncer: Bouncer;
  /** Sends the TLS-RPT reports of a UTC day (default yesterday); undefined when delivery.tlsRpt is off. */
  readonly sendTlsReports?: (day?: string) => Promise<ReportRun[]>;
  /** Resolves when every TLS-RPT count so far is stored. */
  readonly tlsCountsFlushed: () => Promise<unknown>;
  /** Opens the control socket (when a queue was given). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A path from the config: relative ones are relative to the config file, like every other path. */
function configPath(config: Config, p: string): string {
  const base = config.source === BUILT_IN ? process.cwd() : path.dirname(path.resolve(config.source));
  return path.resolve(base, p);
}

function fail(config: Config, key: string, message: string, fix: string): never {
  throw new ConfigError(config.source, [{ path: key, message, fix }]);
}

/**
 * The smarthost password, read once at start. Read here rather than in config/load.ts so the
 * secret never becomes part of the frozen Config (which `config show` prints and errors may
 * quote); only the SMTP session that needs it ever holds it. Never logged.
 */
function smarthostPassword(config: Config, name: string, auth: { passwordFile?: string; passwordEnv?: string }, log: Logger): string {
  const key = `delivery.smarthosts.${name}.auth`;
  if (auth.passwordFile) {
    const file = configPath(config, auth.passwordFile);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      fail(config, `${key}.passwordFile`, `cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'create the file holding only the password (chmod 600), or correct the path');
    }
    if ((statSync(file).mode & 0o077) !== 0) log.warn({ event: 'secret-file-mode', file }, `the password file ${file} can be read by other users; chmod 600 it`);
    const pass = text.replace(/\r?\n$/, '');
    if (pass === '') fail(config, `${key}.passwordFile`, `${JSON.stringify(file)} is empty`, 'write the password into the file (one line)');
    return pass;
  }
  const name_ = auth.passwordEnv!;
  const value = process.env[name_];
  if (value === undefined || value === '') fail(config, `${key}.passwordEnv`, `the environment variable ${name_} is not set`, `set ${name_} in the server's environment (e.g. the systemd unit's EnvironmentFile), or use passwordFile`);
  return value;
}

function readCa(config: Config, key: string, file: string): Buffer {
  try {
    return readFileSync(configPath(config, file));
  } catch (err) {
    fail(config, key, `cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'point it at a PEM file of CA certificates, or remove it to trust the system CAs');
  }
}

/**
 * The DKIM signing keys (when delivery.dkim.enabled); ConfigError for a key that exists but
 * cannot be used. Also run by `check-config` (app/preflight.ts).
 */
export function loadDkimKeys(config: Config, log: Logger): DkimKeys | undefined {
  const dc = config.delivery;
  if (!dc.dkim.enabled) return undefined;
  const configured = Object.fromEntries(Object.entries(dc.dkim.keys).map(([dom, k]) => [dom, { selector: k.selector, ...(k.keyFile ? { keyFile: configPath(config, k.keyFile) } : {}) }]));
  try {
    return DkimKeys.load({ dir: path.join(config.dataDir, 'dkim'), configured, log });
  } catch (err) {
    if (err instanceof DkimKeyError) fail(config, err.setting, err.problem, err.fix);
    throw err;
  }
}

/** Reads every smarthost's password file (or variable) and CA file as serve does, keeping nothing; ConfigError when one cannot be used. */
export function checkSmarthostFiles(config: Config, log: Logger): void {
  for (const [name, s] of Object.entries(config.delivery.smarthosts)) {
    if (s.auth) smarthostPassword(config, name, s.auth, log);
    if (s.ca) readCa(config, `delivery.smarthosts.${name}.ca`, s.ca);
  }
}

/** The local transport, reading the DMARC and TLS-RPT reports delivered to our `rua` (dmarcReports.read, tlsReports.read). */
function withReportReading(d: DeliveryDeps, local: Transport): Transport {
  const { config } = d;
  const ours = (domain: string): boolean => d.directory?.isLocalDomain(domain) === true || config.domains.some((x) => domain === x || domain.endsWith(`.${x}`));
  const reader = reportReaderFor(config, { store: d.store, log: d.log, isOurDomain: ours, ...(d.raise ? { raise: d.raise } : {}) });
  return reader ? readingReports(local, reader) : local;
}

/** Where a notice to `address` goes: local mailboxes (through aliases) or out. */
export function senderRouter(config: Config, directory: LocalDirectory | undefined): (address: string) => EnvelopeRecipient[] {
  return (address) => {
    const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
    const local = directory ? directory.isLocalDomain(domain) : config.domains.includes(domain);
    if (!local) return [{ address, mailbox: address, transport: 'remote' }];
    if (!directory) return [{ address, mailbox: address, transport: 'local' }];
    const r = directory.resolveRecipient(address);
    if (r.kind !== 'local') return [];
    return [...r.mailboxes.map((m) => ({ address, mailbox: m, transport: 'local' as const })), ...r.external.map((m) => ({ address, mailbox: m, transport: 'remote' as const }))];
  };
}

export function buildDelivery(d: DeliveryDeps): Delivery {
  const { config, log } = d;
  const dc = config.delivery;
  const client: SmtpClientOptions = {
    heloName: dc.heloName ?? config.hostname,
    connectTimeoutMs: dc.timeouts.connect,
    greetingTimeoutMs: dc.timeouts.greeting,
    socketTimeoutMs: dc.timeouts.idle,
  };
  const local = withReportReading(d, buildLocalTransport({ config, log, syncer: d.spool.syncer, client }));
  const extraCa = dc.mtaSts.caFile ? readCa(config, 'delivery.mtaSts.caFile', dc.mtaSts.caFile).toString('utf8') : undefined;
  const mtaSts = dc.mtaSts.enabled ? new MtaStsPolicies({ dns: d.dns, store: d.store, log, fetchTimeoutMs: dc.mtaSts.fetchTimeout, addresses: dc.mtaSts.addresses, ...(extraCa ? { extraCa } : {}) }) : undefined;
  const tlsCounter = dc.tlsRpt.enabled ? new StoreTlsCounter({ store: d.store, log }) : undefined;
  const dane = dc.dane.enabled ? new DaneResolver({ servers: config.dns.servers, trustedResolvers: dc.dane.trustedResolvers, timeoutMs: config.dns.timeout, log }) : undefined;
  if (dane && !dane.trusted) {
    log.warn({ event: 'dane-untrusted-resolver', server: dane.server }, `delivery.dane.enabled: the resolver ${dane.server} (dns.servers) is not on loopback nor in delivery.dane.trustedResolvers, so its DNSSEC answers are not believed and DANE never applies; run a validating resolver (e.g. unbound) on 127.0.0.1 and list it in dns.servers, or add its address to delivery.dane.trustedResolvers`);
  }
  const routeTransports: Record<string, Transport> = {
    local,
    mx: new MxTransport({ dns: d.dns, port: dc.mx.port, client, concurrencyPerDomain: dc.mx.concurrencyPerDomain, ownNames: [config.hostname, client.heloName], log, ...(mtaSts ? { mtaSts } : {}), ...(tlsCounter ? { tlsReports: tlsCounter } : {}), ...(dane ? { dane } : {}) }),
  };
  for (const [name, s] of Object.entries(dc.smarthosts)) {
    routeTransports[`smarthost:${name}`] = new SmarthostTransport({
      name,
      host: s.host,
      port: s.port ?? (s.tls === 'implicit' ? 465 : 587),
      tls: s.tls,
      maxConnections: s.maxConnections,
      client,
      log,
      ...(s.auth ? { auth: { user: s.auth.user, pass: smarthostPassword(config, name, s.auth, log) } } : {}),
      ...(s.ca ? { ca: readCa(config, `delivery.smarthosts.${name}.ca`, s.ca) } : {}),
    });
  }
  const dkim = loadDkimKeys(config, log);
  if (d.wrapOutbound) {
    for (const route of Object.keys(routeTransports)) if (route !== 'local') routeTransports[route] = d.wrapOutbound(routeTransports[route]!, route);
  }
  const srs = srsFromConfig(config);
  const router = new Router({ routes: new RouteTable(dc.routes), transports: routeTransports, log, ...(dkim ? { dkim } : {}), ...(srs ? { srs: (sender: string) => srs.forward(sender) } : {}) });
  const bouncer = new Bouncer({
    spool: d.spool,
    hostname: config.hostname,
    routeSender: senderRouter(config, d.directory),
    maxAgeMs: config.queue.maxAge,
    ...(dc.bounces.delayWarnings ? { delayWarningAfterMs: dc.bounces.delayWarningAfter } : {}),
    log,
  });
  let control: ControlServer | undefined;
  const reportFrom = dc.tlsRpt.from ?? `postmaster@${config.domains[0] ?? config.hostname}`;
  return {
    transports: { local, remote: router },
    bouncer,
    ...(tlsCounter
      ? {
          sendTlsReports: (day?: string) =>
            sendTlsReports({ store: d.store, dns: d.dns, spool: d.spool, log, hostname: config.hostname, from: reportFrom, route: senderRouter(config, d.directory), ca: trustedCas(extraCa), timeoutMs: dc.mtaSts.fetchTimeout }, day),
        }
      : {}),
    tlsCountsFlushed: () => tlsCounter?.flushed() ?? Promise.resolve(),
    async start() {
      if (!d.queue || control) return;
      try {
        control = await startControlServer({ spoolDir: d.spool.dir, admin: new QueueAdmin(d.spool, d.queue, log), quarantine: new QuarantineAdmin(d.spool, d.queue, log), catalog: catalogStateOf(d.queue), ...(d.outbound ? { outbound: d.outbound } : {}), log });
      } catch (err) {
        // Mail flows without it; only `mailward queue hold|delete|...` cannot reach this server.
        log.error({ event: 'control-socket-error', dir: d.spool.dir, err: String(err) }, 'cannot open the queue control socket; queue commands will not reach this server');
      }
    },
    async stop() {
      const c = control;
      control = undefined;
      await c?.close();
    },
  };
}

/** How far the running server's start-up scan is; undefined when no server runs. */
export async function serverCatalog(config: Config): Promise<LoadProgress | undefined> {
  const dir = config.paths.spool;
  if ((await spoolOwner(dir)) === undefined) return undefined;
  return controlStatus(dir);
}

/** `queue list --summary` from the running server's catalog; undefined when no server runs. */
export async function serverSummary(config: Config, filter: QueueFilter, top: number): Promise<QueueSummary | undefined> {
  const dir = config.paths.spool;
  if ((await spoolOwner(dir)) === undefined) return undefined;
  return controlSummary(dir, { op: 'summary', filter, top });
}

/** The queue's start-up scan as the control socket reports it. */
function catalogStateOf(queue: Queue): CatalogState {
  return { progress: () => queue.loadProgress, whenLoaded: () => queue.whenLoaded() };
}

/** The transports alone (the worker's `transports`). */
export function buildTransports(d: DeliveryDeps): Record<string, Transport> {
  return buildDelivery(d).transports;
}

export interface QueueCommandResult extends AdminResult {
  /** Who did the work: the running server, or this process on the spool of a stopped one. */
  readonly via: 'server' | 'spool';
}

/**
 * Runs an operator's queue or quarantine command: through the running server's control socket when a server
 * holds the spool, else on the spool directly (taking its lock, so a server cannot start meanwhile).
 */
export async function runQueueCommand(config: Config, req: ControlRequest, onProgress?: (r: AdminResult) => void, onLoading?: (p: LoadProgress) => void): Promise<QueueCommandResult> {
  const dir = config.paths.spool;
  for (let attempt = 0; ; attempt++) {
    const owner = await spoolOwner(dir);
    if (owner !== undefined) {
      try {
        return { ...(await controlRequest(dir, req, onProgress, onLoading)), via: 'server' };
      } catch (err) {
        if (err instanceof ControlUnavailableError) {
          throw new Error(`the server (pid ${owner}) holds the spool ${dir} but does not answer on ${err.path} (${err.code}); restart it, or stop it and run this command again`);
        }
        throw err;
      }
    }
    let spool: Spool;
    try {
      spool = await Spool.open(dir, { log: silentLogger(), fsync: config.queue.fsync });
    } catch (err) {
      // A server started between the two looks: ask it instead.
      if (attempt === 0 && /in use by process/.test(String(err))) continue;
      throw err;
    }
    try {
      const r = isQuarantineRequest(req)
        ? await new QuarantineAdmin(spool, undefined, silentLogger()).run(quarantineOpOf(req), req, onProgress)
        : req.countOnly
          ? { matched: await new QueueAdmin(spool, undefined, silentLogger()).count(req.op, req), changed: 0, missing: 0 }
          : await new QueueAdmin(spool, undefined, silentLogger()).run(req.op, req, onProgress);
      return { ...r, via: 'spool' };
    } finally {
      await spool.close();
    }
  }
}
