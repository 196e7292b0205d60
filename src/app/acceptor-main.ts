// An acceptor process (see acceptors.ts): runs the SMTP sessions of the connections its primary
// hands it, with the same checks, store, directory and TLS certificate, and writes accepted mail
// into the spool itself (fsync'd before the 250, as ever). It owns nothing else: no listening
// socket, no queue, no delivery. It exits when told to stop or when its primary goes away.
import type { Socket } from 'node:net';
import type { Config } from '../config/load.ts';
import { createForwardingLogger, type Logger } from '../observe/log.ts';
import { mailEvents } from '../observe/events.ts';
import { useQueueIdSlice } from '../core/ids.ts';
import { TunnelDetector } from '../doctor/tunnel.ts';
import { createSessionHost, type SessionHost } from '../ingress/listener.ts';
import { SpoolIntake } from '../queue/intake.ts';
import { openDirectory, openHashPool } from './accounts.ts';
import { openStore } from './store.ts';
import { buildLive, type LiveState } from './live.ts';
import { createResolver } from './compose.ts';
import { sessionHostOptions, spoolPortOf } from './sessions.ts';
import { CertificateHolder, validatePair, type PemPair } from './certificates.ts';
import type { AcceptorBatch, FromAcceptor, ToAcceptor } from './acceptors.ts';
import { Teardown } from './teardown.ts';

/** Everything for the primary, gathered over one event-loop turn and sent as one message. */
/** How long a trusted-network client's MAIL FROM waits for the primary's detector at most. */
const COUNTED_LIMIT_MS = 5000;

class Outbox {
  #logs = '';
  #events: Array<NonNullable<AcceptorBatch['events']>[number]> = [];
  #observed: Array<NonNullable<AcceptorBatch['observed']>[number]> = [];
  #commits: Array<NonNullable<AcceptorBatch['commits']>[number]> = [];
  #closed: string[] = [];
  #scheduled = false;
  /** Observations a session waits on, by sequence number (see `observedAndCounted`). */
  #counting = new Map<number, () => void>();
  #countSeq = 0;
  #countAsk: number | undefined;

  log(line: string): void {
    this.#logs += line;
    this.#schedule();
  }
  event(e: NonNullable<AcceptorBatch['events']>[number]): void {
    this.#events.push(e);
    this.#schedule();
  }
  observed(o: NonNullable<AcceptorBatch['observed']>[number]): void {
    this.#observed.push(o);
    this.#schedule();
  }
  /**
   * An observation whose outcome the session needs before it goes on (a client in
   * relay.trustedNetworks: this MAIL FROM may make it a tunnel suspect, which withdraws that
   * trust). Sent at once; resolves when the primary has counted it — any suspect it made arrives
   * before the answer, the channel keeps order — or after COUNTED_LIMIT_MS without one (primary
   * gone or stalled: the session goes on with what this process knows).
   */
  observedAndCounted(o: NonNullable<AcceptorBatch['observed']>[number]): Promise<void> {
    this.#observed.push(o);
    const seq = ++this.#countSeq;
    this.#countAsk = seq;
    const counted = new Promise<void>((resolve) => {
      const late = setTimeout(() => this.counted(seq), COUNTED_LIMIT_MS);
      late.unref();
      this.#counting.set(seq, () => {
        clearTimeout(late);
        resolve();
      });
    });
    this.flush();
    return counted;
  }
  /** The primary counted every observation up to `seq`. */
  counted(seq: number): void {
    for (const [n, resolve] of this.#counting) {
      if (n > seq) continue;
      this.#counting.delete(n);
      resolve();
    }
  }
  /** Sent at once, before the session writes its 250: once the client has its 250, the primary
   * has the message in its pipe even if this process dies the next moment. */
  commit(c: NonNullable<AcceptorBatch['commits']>[number]): void {
    this.#commits.push(c);
    this.flush();
  }
  closed(id: string): void {
    this.#closed.push(id);
    this.#schedule();
  }
  flush(done?: () => void): void {
    const b: AcceptorBatch = {
      t: 'batch',
      ...(this.#logs ? { logs: this.#logs } : {}),
      ...(this.#events.length ? { events: this.#events } : {}),
      ...(this.#observed.length ? { observed: this.#observed } : {}),
      ...(this.#countAsk !== undefined ? { countedUpTo: this.#countAsk } : {}),
      ...(this.#commits.length ? { commits: this.#commits } : {}),
      ...(this.#closed.length ? { closed: this.#closed } : {}),
    };
    this.#logs = '';
    this.#events = [];
    this.#observed = [];
    this.#countAsk = undefined;
    this.#commits = [];
    this.#closed = [];
    if (Object.keys(b).length > 1) send(b, done);
    else done?.();
  }
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.flush();
    });
  }
}

function send(m: FromAcceptor, done?: () => void): void {
  // After the primary went away there is no one to tell (the disconnect handler exits).
  if (process.connected) process.send!(m, undefined, {}, () => done?.());
  else done?.();
}

const outbox = new Outbox();

interface Running {
  readonly log: Logger;
  readonly hosts: Map<string, SessionHost>;
  readonly tunnels: TunnelDetector;
  readonly certificates: CertificateHolder;
  setConfig(next: Config): void;
  stop(): Promise<void>;
}

/**
 * An acceptor is itself one of several processes running in parallel: the spam check analyses in
 * line instead of in a thread of its own (one thread fewer per core to share), unless
 * checks.spam.workers says otherwise.
 */
function forAcceptor(config: Config): Config {
  const spam = config.checks.spam;
  if (spam !== undefined && (typeof spam !== 'object' || spam === null || 'workers' in spam)) return config;
  return { ...config, checks: { ...config.checks, spam: { ...(spam ?? {}), workers: 0 } } };
}

async function start(given: Config, logLevel: string, certificate: PemPair): Promise<Running> {
  const config = forAcceptor(given);
  const log = createForwardingLogger(logLevel, { write: (line) => outbox.log(line) });
  mailEvents.subscribe((e) => outbox.event([e.event, e.fields, e.at]));
  const cleanups = new Teardown(log);
  const stopAll = (): Promise<void> => cleanups.run();
  try {
    // The certificate is the primary's (configured, renewed or self-signed): it sends every new one.
    const certificates = CertificateHolder.of(certificate);
    const hashPool = openHashPool(config);
    cleanups.push(() => hashPool.close());
    const directory = openDirectory(config, { hashPool });
    cleanups.push(() => directory.close());
    const store = await openStore(config, log);
    cleanups.push(() => store.close());
    const dns = createResolver(config);
    // Suspects come from the primary's detector, which sees every acceptor's observations.
    const tunnels = new TunnelDetector({ log });
    const shared = { log, clock: Date.now, dns, store, directory, tunnels };
    let live: LiveState = buildLive(config, shared);
    const intake = new SpoolIntake(config.paths.spool, { fsync: config.queue.fsync, committed: (envelope, area, written) => outbox.commit(written ? [envelope, area, written.header.toString('latin1'), written.body.toString('latin1')] : [envelope, area]) });
    cleanups.push(() => intake.close());
    const parts = {
      config,
      log,
      clock: Date.now,
      directory,
      spool: spoolPortOf(intake),
      tunnel: {
        observe: (client: string, helo: string | undefined, domain: string | undefined): void | Promise<void> => {
          // The primary's detector sees every acceptor's sessions; only a trusted network's
          // relaying depends on its verdict, so only such a client waits for it.
          const d = live.relay.decide({ localDomain: false, clientAddress: client });
          if (d.allowed && d.network !== undefined) return outbox.observedAndCounted([client, helo, domain]);
          outbox.observed([client, helo, domain]);
        },
      },
      live: () => live,
    };
    const hosts = new Map<string, SessionHost>();
    for (const l of config.listeners) hosts.set(l.name, createSessionHost(sessionHostOptions(l, parts, certificates)));
    cleanups.push(() => Promise.all([...hosts.values()].map((h) => h.close())));
    return {
      log,
      hosts,
      tunnels,
      certificates,
      setConfig: (next) => {
        live = buildLive(forAcceptor(next), shared);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

let running: Running | undefined;
let stopping: Promise<void> | undefined;

const stop = (code: number): void => {
  stopping ??= (async () => {
    await running?.stop();
    // Disconnect only once the last batch is written: disconnect() drops what is still queued.
    await new Promise<void>((resolve) => outbox.flush(resolve));
    process.exitCode = code;
    if (process.connected) process.disconnect();
    // Anything still holding the event loop open (a client library's timer) must not keep a
    // stopped acceptor alive.
    setTimeout(() => process.exit(code), 1000).unref();
  })();
};

process.on('message', (m: ToAcceptor, handle?: Socket) => {
  switch (m.t) {
    case 'init':
      useQueueIdSlice(m.slice.index, m.slice.count);
      start(m.config, m.logLevel, m.tls).then(
        (r) => {
          running = r;
          send({ t: 'ready' });
        },
        (err: unknown) => {
          send({ t: 'failed', error: err instanceof Error ? err.message : String(err) });
          stop(1);
        },
      );
      return;
    case 'conn': {
      const host = running?.hosts.get(m.listener);
      if (!handle) {
        // The socket closed before it could travel: its slot must be given back all the same.
        outbox.closed(m.info.id);
        return;
      }
      if (!host || stopping) {
        handle.destroy();
        outbox.closed(m.info.id);
        return;
      }
      const rest = m.rest !== undefined ? Buffer.from(m.rest, 'latin1') : undefined;
      void host.serve(handle, { info: m.info, ...(rest ? { rest } : {}), ...(m.refusal ? { refusal: m.refusal } : {}) }).then(() => outbox.closed(m.info.id));
      return;
    }
    case 'reload':
      try {
        running?.setConfig(m.config);
      } catch (err) {
        running?.log.error({ event: 'reload', applied: false, err: err instanceof Error ? err.message : String(err) }, 'acceptor could not apply the reloaded config; the running config stays in force');
      }
      return;
    case 'tls':
      try {
        const { context, facts } = validatePair(m.pair);
        if (running?.certificates.swap(m.pair, context, facts)) running.log.debug({ event: 'tls-swapped', fingerprint: facts.fingerprint }, 'acceptor uses the new certificate');
      } catch (err) {
        running?.log.error({ event: 'tls-reload', applied: false, err: err instanceof Error ? err.message : String(err) }, 'acceptor could not use the new certificate; it keeps the running one');
      }
      return;
    case 'suspect':
      running?.tunnels.adopt(m.suspect);
      return;
    case 'counted':
      outbox.counted(m.seq);
      return;
    case 'stop':
      stop(0);
      return;
  }
});

// Ctrl-C in a terminal and systemd's stop signal the whole process group: an acceptor stops
// when its primary tells it to (after the listeners closed), or when the primary is gone — never
// on its own, which would cut sessions short and look like a crash to the primary.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);

// The primary went away (a crash or kill -9): sessions cannot be handed on; stop at once.
process.on('disconnect', () => {
  if (!stopping) process.exit(0);
});
