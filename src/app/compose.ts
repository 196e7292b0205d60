// The composition root: the one place that builds every implementation from the config — the
// directory, the state store, the spool, queue and delivery worker, the compiled pipeline, TLS,
// and one listener per configured port — and tears them down again in order.
import type { Server as NetServer, Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { Resolver } from 'node:dns/promises';
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import { silentLogger } from '../observe/log.ts';
import { ALL_CHECKS } from '../checks/index.ts';
import { CachingResolver } from '../checks/lib/dns-cache.ts';
import { warmSpf } from '../checks/lib/spf-eval.ts';
import { compilePipeline, createRegistry, type CompiledPipeline } from '../pipeline/registry.ts';
import type { CheckEnv, LocalDirectory } from '../pipeline/check.ts';
import { openStore } from './store.ts';
import { startSpamJobs } from './spam-jobs.ts';
import { placedChecks } from '../doctor/audit-config.ts';
import type { Store } from '../store/store.ts';
import { Spool } from '../queue/spool.ts';
import { Queue, type ScanOptions } from '../queue/queue.ts';
import { Worker } from '../delivery/worker.ts';
import { buildDelivery } from './delivery.ts';
import { createSessionHost, startListener, type AdmittedConnection, type Listener, type SessionHost } from '../ingress/listener.ts';
import { startLocalSubmit } from '../ingress/local-submit.ts';
import { localIdentifier } from './local-users.ts';
import { ConfigError } from '../config/errors.ts';
import { openDirectory, openHashPool } from './accounts.ts';
import { buildLive, needsRestart, type LiveState } from './live.ts';
import { guardSettings } from '../config/guard-schema.ts';
import { OutboundGuard } from '../guard/guard.ts';
import { Alerter, startAlertDispatcher } from '../guard/alerts.ts';
import { acmeFiles, startAcme } from './acme.ts';
import { spoolAlertMailer } from '../guard/mailer.ts';
import { guardedTransport } from '../delivery/guarded-transport.ts';
import { QueueAdmin } from '../queue/admin.ts';
import { startGuardWatch } from './guard-watch.ts';
import { startDigestJob } from '../guard/digest.ts';
import { startQueueGrowth } from '../guard/queue-growth.ts';
import { MailStats } from '../observe/stats.ts';
import { Metrics, type QueueStatsSource } from '../observe/metrics.ts';
import { TunnelDetector, type TunnelSuspect } from '../doctor/tunnel.ts';
import { AcceptorPool } from './acceptors.ts';
import { startSelfProbe } from './self-probe.ts';
import { sendHygieneDigest } from './hygiene-digest.ts';
import { Teardown } from './teardown.ts';
import { prepareDataDir } from './preflight.ts';
import { useQueueIdSlice } from '../core/ids.ts';
import { watchCertificateFiles } from './certificates.ts';
import { loadCertificateHolder, sessionHostOptions, spoolPortOf, type SessionParts } from './sessions.ts';
import { startAdmin } from '../shells/admin/server.ts';
import { guardControlFrom, queueConsoleFrom, queueControlFrom } from '../shells/admin/controls.ts';
import { OutboundSwitch, switchedTransport } from '../delivery/outbound-switch.ts';
import { messageDetail } from '../queue/message-detail.ts';
import { catalogQueueStats, spoolQueueStats } from '../shells/admin/queue-stats.ts';
import { startMtaStsServer, type MtaStsServer } from './mta-sts-server.ts';
import type { ReportRun } from '../delivery/tls-policy/tls-rpt.ts';
import { startDmarcReports, type DmarcReportRun } from './dmarc-jobs.ts';
import { summarizeReports } from './dmarc-inbox.ts';
import { summarizeTlsReports } from './tlsrpt-inbox.ts';

export interface RunningServer {
  readonly config: Config;
  /** The port a listener is bound to (useful with port 0). */
  port(listener: string): number;
  /** The admin HTTP port, when admin.enabled. */
  adminPort(): number | undefined;
  /** The MTA-STS policy host's port, when mtaSts.serve.enabled. */
  mtaStsPort(): number | undefined;
  /** Sends the TLS-RPT reports of a UTC day (default: yesterday) now; the server also does it daily. */
  sendTlsReports(day?: string): Promise<ReportRun[]>;
  /** Sends the DMARC aggregate reports of the periods ended by `now` (default: now); the server also does it each period. */
  sendDmarcReports(now?: number): Promise<DmarcReportRun[]>;
  /**
   * Applies a new config to what can change without a restart (check lists and their options,
   * relay networks, login limits). Throws ConfigError, keeping the old, when it cannot be used.
   * `restartNeeded` names the changed settings that wait for a restart.
   */
  reload(next: Config): { restartNeeded: string[] };
  /** The port of the ACME challenge listener (tls.acme), when there is one. */
  acmePort(): number | undefined;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly log?: Logger;
  readonly clock?: () => number;
  /** Options of the start-up spool scan (tests hold it at a known point with `scanned`). */
  readonly queueScan?: ScanOptions;
  /** Listening sockets bound before the process dropped root, by listener name (app/privileges.ts). */
  readonly bound?: ReadonlyMap<string, NetServer>;
  /**
   * With `workers` > 1: sessions stay in this process until this resolves, even once the
   * acceptors are ready (tests hand a connection to the interim host without timing).
   */
  readonly holdAcceptors?: Promise<void>;
}

/**
 * Builds the server's DNS resolver: it asks the configured servers with the configured time-out
 * and keeps answers in memory (checks/lib/dns-cache.ts), so build it once per server and share it.
 */
export function createResolver(config: Config): Resolver {
  const r = new CachingResolver({ timeout: config.dns.timeout, tries: config.dns.tries });
  if (config.dns.servers.length > 0) r.setServers([...config.dns.servers]);
  return r;
}

/**
 * Validates every check's options and placement without starting anything; used by
 * `check-config`. Throws ConfigError naming the setting.
 */
export function compileChecks(config: Config): CompiledPipeline {
  const inert: LocalDirectory = { isLocalDomain: (d) => config.domains.includes(d), resolveRecipient: () => ({ kind: 'unknown' }), sendAsAllowed: () => [] };
  const env: CheckEnv = {
    log: silentLogger(),
    clock: Date.now,
    hostname: config.hostname,
    domains: config.domains,
    directory: inert,
    dns: createResolver(config),
    store: undefined as unknown as Store, // creating a check must not touch the store
  };
  return compilePipeline(config, createRegistry(ALL_CHECKS), env);
}

/** The risks the config acknowledges (relay.allowLocalTrust): one warning line each, at every start and reload. */
function logConfigWarnings(config: Config, log: Logger): void {
  for (const w of config.warnings) log.warn({ event: 'config-warning', setting: w.path }, `acknowledged risk at ${w.path}: ${w.message}. Fix: ${w.fix}`);
}

/**
 * `workers` as a number: "auto" is one acceptor per core, except on 2 cores or fewer, where it is
 * 1 (no acceptors): there one process accepted more mail per second and spent less CPU per
 * message than acceptors in every bench/smtp run (docs/decisions/0012, bench/results/smtp.md).
 */
export function workerCount(config: Pick<Config, 'workers'>, cores: number = availableParallelism()): number {
  if (config.workers !== 'auto') return config.workers;
  return cores <= 2 ? 1 : cores;
}

/**
 * The listener local submissions take their check lists from (sendmail.checksOf), as a session
 * without TLS or AUTH: the session is logged in by the proven uid before it begins.
 */
function localListener(config: Config): Config['listeners'][number] | undefined {
  const named = config.sendmail.checksOf;
  const l = named === undefined ? config.listeners.find((x) => x.kind !== 'mx') : config.listeners.find((x) => x.name === named);
  if (named === undefined && !l) return undefined;
  if (!l) {
    throw new ConfigError(config.source, [{ path: 'sendmail.checksOf', message: `there is no enabled listener named ${JSON.stringify(config.sendmail.checksOf)}`, fix: `name your submission listener (one of: ${config.listeners.map((x) => x.name).join(', ')}), or set sendmail.enabled: false` }]);
  }
  return { ...l, implicitTls: false, starttls: false, auth: false, requireAuth: true, requireTls: false, advertiseRequireTls: false, greetingDelayMs: 0, proxyTrusted: [] };
}

export async function startMailward(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const t0 = performance.now();
  const log = opts.log ?? silentLogger();
  const clock = opts.clock ?? Date.now;
  // A dataDir that is a file, or not writable, is named as such before anything opens (app/preflight.ts).
  prepareDataDir(config);
  const cleanups = new Teardown(log);
  const stopAll = (): Promise<void> => cleanups.run();
  try {
    // Swapped without a restart: the watched tls.cert/tls.key files, SIGHUP, ACME renewals.
    const certificates = await loadCertificateHolder(config, log);
    let acmePort: number | undefined;
    const certificateFiles = config.tls.cert && config.tls.key ? watchCertificateFiles({ holder: certificates, cert: config.tls.cert, key: config.tls.key, log }) : undefined;
    if (certificateFiles) cleanups.push(() => certificateFiles.close());
    const hashPool = openHashPool(config);
    cleanups.push(() => hashPool.close());
    const directory = openDirectory(config, { hashPool });
    cleanups.push(() => directory.close());
    const store = await openStore(config, log);
    cleanups.push(() => store.close());

    const dns = createResolver(config);
    const stats = new MailStats({ clock, store, log });
    await stats.load();
    stats.startPersisting();
    cleanups.push(() => stats.close());
    // The queue figures (dashboard, /metrics) come from the queue's catalog once it is built (below).
    let queueStats: QueueStatsSource = spoolQueueStats(config.paths.spool);
    const metrics = new Metrics({ queueStats: () => queueStats(), passwordHashes: () => hashPool.counts, directoryLookups: () => directory.recipientLookups });
    const unsubscribe = [stats.attach(), metrics.attach()];
    cleanups.push(() => unsubscribe.forEach((off) => off()));
    // Set once the acceptors run: they learn of every suspect this process's detector finds.
    let onSuspect: (s: TunnelSuspect) => void = () => undefined;
    const tunnels = new TunnelDetector({
      clock,
      log,
      onSuspect: (suspect) => {
        stats.noteTunnel(suspect);
        metrics.tunnelSuspected();
        onSuspect(suspect);
      },
    });
    const shared = { log, clock, dns, store, directory, tunnels };
    // Swapped as a whole by reload(); each new session reads it once when it starts.
    let live: LiveState = buildLive(config, shared);

    const spool = await Spool.open(config.paths.spool, { log, fsync: config.queue.fsync });
    cleanups.push(() => spool.close());
    const queue = new Queue(spool, {
      log,
      minBackoffMs: config.queue.minBackoff,
      maxBackoffMs: config.queue.maxBackoff,
      maxAgeMs: config.queue.maxAge,
      concurrency: config.queue.concurrency,
    });
    queueStats = catalogQueueStats(queue, queueStats);
    // "Stop all outbound" (persisted in dataDir): wraps every route to another server, never local.
    const outbound = new OutboundSwitch({ dataDir: config.dataDir, log, clock, onChange: (stopped) => metrics.outboundStopped(stopped), flush: async () => queue.flushAll() });
    // The outbound guard holds relayed mail in the queue while a breaker is open; local
    // delivery never passes through it. Its alert channels also tell of received reports' findings.
    const guard = new OutboundGuard({ store, clock, log, hostname: config.hostname, settings: guardSettings(config.checks, config.source) });
    const delivery = buildDelivery({ config, log, spool, store, dns, directory, queue, outbound, wrapOutbound: (t) => switchedTransport(t, outbound), raise: (a) => guard.alerter.raise(a) });
    const transports = { ...delivery.transports, remote: guardedTransport(delivery.transports.remote!, guard, log) };
    const worker = new Worker({ spool, queue, log, transports, bouncer: delivery.bouncer });
    // The spool scan starts once the listeners answer (below): new mail needs no old catalog.
    let loading: Promise<unknown> = Promise.resolve();
    cleanups.push(async () => {
      // The scan sees the stop at its next file; let it leave before the spool closes. Then the
      // catalog snapshot: the next start reads the folder listings and it, not every file.
      await queue.close().catch((err: unknown) => log.warn({ event: 'catalog-snapshot-error', err }, 'cannot write the catalog snapshot at shutdown; the next start reads every file'));
      await loading;
    });
    worker.start();
    cleanups.push(() => worker.stop());
    // The control socket of `mailward queue ...`; closed first on stop.
    await delivery.start();
    cleanups.push(() => delivery.stop());
    const postmaster = `postmaster@${config.domains[0] ?? config.hostname}`;
    // The spam filter's housekeeping (Junk-move learning, token expiry, quarantine retention),
    // only where some listener runs the filter.
    if (placedChecks(config).has('spam')) {
      const spamJobs = startSpamJobs({ config, store, log, clock, spool, queue });
      cleanups.push(() => spamJobs.stop());
    }
    // A trip puts the source's queued mail on hold at once, wherever the session ran.
    const queueAdmin = new QueueAdmin(spool, queue, log);
    const watch = startGuardWatch({
      guard,
      log,
      clock,
      hold: async (filter) => (await queueAdmin.run('hold', { filter })).changed,
      onWarning: (w) => metrics.guardWarning(w.kind),
    });
    cleanups.push(() => watch.stop());
    const guardSet = guard.settings;
    if (guardSet.digest.enabled) {
      const digest = startDigestJob({ store, alerter: guard.alerter, log, hour: guardSet.digest.hour, clock });
      cleanups.push(() => digest.stop());
    }
    const alerts = startAlertDispatcher({
      store,
      log,
      hostname: config.hostname,
      mailer: spoolAlertMailer({ spool, hostname: config.hostname, to: postmaster, directory }),
      // The postmaster's mail says how many messages wait in hold/ (the guard's and the operator's).
      held: async () => {
        await queue.whenLoaded();
        return (await queue.select({}, ['hold'])).length;
      },
      heldAtTrip: (a) => watch.heldAtTrip(a.name, a.at),
    });
    cleanups.push(() => alerts.stop());
    // The queue-growth alarm: the catalog's counts every interval, once it holds the whole spool.
    const growth = guardSet.queueGrowth.enabled
      ? startQueueGrowth({ settings: guardSet.queueGrowth, depth: () => (queue.loadProgress.state === 'loaded' ? queue.counts() : undefined), store, hostname: config.hostname, raise: (a) => guard.alerter.raise(a), log, clock, observe: (s) => metrics.queueGrowth(s) })
      : undefined;
    if (growth) cleanups.push(() => growth.stop());
    let admin: Awaited<ReturnType<typeof startAdmin>> | undefined;
    if (config.admin.enabled) {
      admin = await startAdmin({
        config: config.admin,
        stats,
        metrics,
        directory,
        queueStats,
        queueControl: queueControlFrom(queueAdmin),
        queueConsole: queueConsoleFrom(queueAdmin, (id) => messageDetail(spool, id)),
        outbound,
        guardControl: guardControlFrom(guard),
        catalog: () => queue.loadProgress,
        ...(growth ? { queueGrowth: () => growth.status() } : {}),
        warnings: () => live.config.warnings.map((w) => ({ setting: w.path, message: w.message, fix: w.fix })),
        ...(config.dmarcReports.read.enabled ? { dmarcReports: (ms: number) => summarizeReports(store, { since: Date.now() - ms }) } : {}),
        ...(config.tlsReports.read.enabled ? { tlsReports: (ms: number) => summarizeTlsReports(store, { since: Date.now() - ms }) } : {}),
        log,
      });
      const a = admin;
      cleanups.push(() => a.close());
      log.info({ event: 'listening', listener: 'admin', address: admin.address, port: admin.port }, `admin API on http://${admin.address}:${admin.port}/`);
    }

    let mtaSts: MtaStsServer | undefined;
    if (config.mtaSts.serve.enabled) {
      const served = await startMtaStsServer(config, () => certificates.current(), log);
      mtaSts = served;
      cleanups.push(() => served.close());
    }
    // TLS-RPT (RFC 8460 §3): yesterday's reports, once; an hourly look is enough, and the store
    // remembers what was sent, so a restart or a second node sends nothing twice.
    const sendReports = delivery.sendTlsReports;
    if (sendReports) {
      const timer = setInterval(() => {
        sendReports().catch((err: unknown) => log.warn({ event: 'tlsrpt-failed', err: String(err) }, 'TLS-RPT reports could not be sent'));
      }, 3_600_000);
      timer.unref();
      cleanups.push(() => clearInterval(timer));
    }

    const dmarc = startDmarcReports({ config, store, dns, spool, directory, log, clock });
    cleanups.push(() => dmarc.stop());

    // With more than one worker the sessions run in acceptor processes (acceptors.ts); this
    // process keeps the sockets, the limits, the queue and delivery. The listeners open without
    // waiting for the children to load the application: until the first acceptor serves, this
    // process runs the sessions itself (docs/decisions/0018-startup.md).
    const workers = workerCount(config);
    let acceptors: AcceptorPool | undefined;
    // Set once every acceptor has served: from then on connections always go to the pool.
    let handOff = false;
    let held = opts.holdAcceptors !== undefined;
    void opts.holdAcceptors?.then(() => (held = false));
    // Slice 0 of the queue-id space is ours (bounces, alerts); the acceptors take the others.
    // Set before the first session here (the interim hosts below) makes an id.
    if (workers > 1) useQueueIdSlice(0, workers + 1);
    // Stopped after the listeners close (the last added runs first), as when it was forked here.
    cleanups.push(() => acceptors?.stop());
    onSuspect = (suspect) => acceptors?.suspect(suspect);
    const parts: SessionParts = { config, log, clock, directory, spool: spoolPortOf(spool), tunnel: tunnels, live: () => live };

    const listeners = new Map<string, Listener>();
    // Sessions this process runs while the acceptors start (workers > 1 only).
    const interim: SessionHost[] = [];
    // Listeners close first on stop: no new mail while the queue winds down.
    cleanups.push(async () => {
      await Promise.all([...listeners.values()].map((l) => l.close()));
      await Promise.all(interim.map((h) => h.close()));
    });
    for (const l of config.listeners) {
      const hostOptions = sessionHostOptions(l, parts, certificates);
      let serve: ((socket: Socket, admitted: AdmittedConnection) => Promise<void>) | undefined;
      if (workers > 1) {
        const here = createSessionHost(hostOptions);
        interim.push(here);
        serve = (socket, admitted) => {
          const pool = acceptors;
          return pool && (handOff || (!held && pool.serving)) ? pool.serve(l.name, socket, admitted) : here.serve(socket, admitted);
        };
      }
      const listener = await startListener({
        ...hostOptions,
        host: l.host,
        port: l.port,
        proxy: { trusted: l.proxyTrusted },
        maxConnections: config.limits.maxConnections,
        maxConnectionsPerClient: config.limits.maxConnectionsPerClient,
        ...(serve ? { serve } : {}),
        ...(opts.bound?.has(l.name) ? { bound: opts.bound.get(l.name)! } : {}),
      });
      listeners.set(l.name, listener);
      log.info({ event: 'listening', listener: l.name, kind: l.kind, address: listener.address, port: listener.port }, `${l.name} listening on ${listener.address}:${listener.port}`);
    }
    // The acceptors are forked once the listeners answer: two more Node processes loading the
    // application beside this one slowed its own way to the first 220 on 2 cores (0033).
    if (workers > 1) {
      const { pool, ready } = AcceptorPool.launch({
        config,
        count: workers,
        log,
        committed: (envelope, area, written) => spool.adoptCommitted(envelope, area, written),
        observed: (client, helo, domain) => tunnels.observe(client, helo, domain),
        strays: (since) => spool.adoptStray(since, (id) => queue.lookup(id) !== undefined || queue.isInFlight(id)),
        suspects: () => tunnels.suspects(),
        certificate: () => certificates.pair,
      });
      acceptors = pool;
      certificates.onSwap((pair) => pool.certificate(pair));
      ready.then(
        async () => {
          await opts.holdAcceptors;
          handOff = true;
          log.info({ event: 'acceptors', count: workers, pids: pool.pids, msSinceProcessStart: Math.round(performance.now()) }, `${workers} acceptor processes run the SMTP sessions`);
        },
        (err: unknown) =>
          log.error({ event: 'acceptors-failed', err: err instanceof Error ? err.message : String(err) }, 'the acceptor processes could not start; this process serves the sessions while they are restarted (see the acceptor-exit lines)'),
      );
    }
    // The relay self-probe: every selfProbe.interval and after each reload (not at start: a
    // start is not a change, and the first interval comes soon enough).
    const probe = config.selfProbe.enabled
      ? startSelfProbe({
          config: () => live.config,
          listeners: () => config.listeners.map((l) => ({ name: l.name, address: listeners.get(l.name)!.address, port: listeners.get(l.name)!.port, implicitTls: l.implicitTls })),
          log,
          clock,
          raise: (a) => guard.alerter.raise(a),
          observe: (target, relayed) => metrics.selfProbe(target, relayed),
        })
      : undefined;
    if (probe) cleanups.push(() => probe.stop());
    // The daily hygiene digest: what doctor names about accounts and credentials, on the alert channels.
    if (config.hygiene.digest > 0) {
      const digest = setInterval(() => void sendHygieneDigest(live.config, (a) => guard.alerter.raise(a), clock, log), config.hygiene.digest);
      digest.unref();
      cleanups.push(() => clearInterval(digest));
    }
    const localChecks = config.sendmail.enabled ? localListener(config) : undefined;
    if (config.sendmail.enabled && !localChecks) log.warn({ event: 'sendmail-off', setting: 'sendmail.checksOf' }, 'no submission listener: local submission (sendmail) is off; add a submission listener or set sendmail.checksOf');
    if (localChecks) {
      const local = await startLocalSubmit({
        socketPath: config.sendmail.socket,
        host: createSessionHost(sessionHostOptions(localChecks, parts, certificates)),
        identify: localIdentifier(config.sendmail),
        maxConnections: config.limits.maxConnectionsPerClient,
        onEvent: (event, detail) => log.info({ event: 'listener', listener: 'sendmail', kind: event, ...detail }, event),
      });
      cleanups.push(() => local.close());
      log.info({ event: 'listening', listener: 'sendmail', kind: 'local', address: local.path }, `local submission (sendmail) on ${local.path}`);
    }
    // ACME (tls.acme): the challenge listener and the renewal timer; the listeners above serve the
    // stored certificate (or a self-signed one) until the first is issued, then each renewal.
    const acmeSettings = config.tls.acme;
    if (acmeSettings) {
      const alerts = guardSettings(config.checks, config.source).alerts;
      const alerter = new Alerter({ log, store, clock, hostname: config.hostname, mail: alerts.postmaster, ...(alerts.webhook ? { webhook: { url: alerts.webhook, timeoutMs: alerts.webhookTimeout } } : {}) });
      const manager = await startAcme({ settings: acmeSettings, files: acmeFiles(config.paths.acme), holder: certificates, log, clock, alert: (a) => alerter.raise(a) });
      cleanups.push(async () => {
        await manager.stop();
        await alerter.idle();
      });
      acmePort = manager.port;
    }
    // Time since the process began (module loading included) and its CPU time so far: what
    // start-up costs before mail is answered (bench/startup, docs/decisions/0018-startup.md).
    const cpu = process.cpuUsage();
    const sinceProcessStart = Math.round(performance.now());
    log.info(
      { event: 'started', config: config.source, domains: config.domains, dataDir: config.dataDir, msSinceProcessStart: sinceProcessStart, msInStart: Math.round(performance.now() - t0), cpuMs: Math.round((cpu.user + cpu.system) / 1000) },
      `mailward started: listening ${sinceProcessStart} ms after the process began`,
    );
    logConfigWarnings(config, log);
    // mailauth is loaded lazily (0018); where a check needs it, load it now rather than in the
    // first message's DATA.
    const placed = placedChecks(config);
    if (placed.has('spf') || placed.has('dkim-dmarc')) void warmSpf();
    // Now the old mail: the scan catalogues and schedules it beside new commits (queue.ts).
    loading = queue.start(opts.queueScan).then(
      (recovered) => {
        if (recovered.scheduled > 0) log.info({ event: 'queue-recovered', ...recovered }, `picked up ${recovered.scheduled} queued message(s)`);
      },
      (err: unknown) => log.error({ event: 'queue-load-error', err }, 'the spool scan failed; queued mail from before this start is not scheduled until a restart'),
    );

    let stopping: Promise<void> | undefined;
    return {
      config,
      port(name) {
        const l = listeners.get(name);
        if (!l) throw new Error(`no listener named ${JSON.stringify(name)}`);
        return l.port;
      },
      adminPort: () => admin?.port,
      mtaStsPort: () => mtaSts?.port,
      sendTlsReports: async (day) => {
        await delivery.tlsCountsFlushed();
        return sendReports ? sendReports(day) : [];
      },
      sendDmarcReports: (now) => dmarc.run(now ?? clock()),
      acmePort: () => acmePort,
      reload(next) {
        const restartNeeded = needsRestart(live.config, next);
        if (restartNeeded.includes('listeners')) {
          // The running listeners' names and ports are fixed; their lists must match them.
          log.warn({ event: 'reload', applied: false, restartNeeded }, 'config reload: listeners changed; restart to apply anything');
          return { restartNeeded };
        }
        live = buildLive(next, shared);
        acceptors?.reload(next);
        // certbot renewed and ran `systemctl reload`: read the files now rather than at the watch.
        certificateFiles?.reload('SIGHUP');
        logConfigWarnings(next, log);
        if (probe && next.selfProbe.enabled && next.selfProbe.afterReload) void probe.run('reload');
        log.info({ event: 'reload', applied: true, config: next.source, restartNeeded }, restartNeeded.length > 0 ? `config reloaded; restart to apply: ${restartNeeded.join(', ')}` : 'config reloaded');
        return { restartNeeded };
      },
      stop() {
        stopping ??= stopAll().then(() => log.info({ event: 'stopped' }, 'mailward stopped'));
        return stopping;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
