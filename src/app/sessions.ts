// What a listener's sessions are built from, in one place for both ways of running them: in the
// server's own process (compose.ts) and in acceptor processes (acceptor-main.ts). The protocol
// options come from the config; each new session reads the live state (reloadable) once.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConfigError } from '../config/errors.ts';
import { ensureSelfSignedCertificate } from '../ingress/selfsigned.ts';
import type { Config, ListenerConfig } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import type { LocalDirectory } from '../pipeline/check.ts';
import type { ProtocolOptions, SessionHandler } from '../ingress/smtp/types.ts';
import { createSessionHandler, type Authenticator, type SpoolPort } from '../ingress/session.ts';
import type { LiveState } from './live.ts';
import { DovecotAuth } from '../directory/dovecot-auth.ts';
import { srsFromConfig } from './srs-keys.ts';
import type { SessionHostOptions } from '../ingress/listener.ts';
import type { NewEnvelope } from '../queue/envelope.ts';
import type { SpoolWriter } from '../queue/writer.ts';
import type { TlsContextSource } from '../ingress/smtp/tls.ts';
import { CertificateHolder, certificateFacts, type PemPair } from './certificates.ts';
import { acmeFiles, storedCertificate } from './acme.ts';

function protocolOptions(config: Config, l: ListenerConfig, secureContext: tls.SecureContext | TlsContextSource): ProtocolOptions {
  return {
    hostname: config.hostname,
    banner: 'Mailward',
    tls: secureContext,
    implicitTls: l.implicitTls,
    starttls: l.starttls,
    auth: l.auth,
    authWithoutTls: false,
    requireAuth: l.requireAuth,
    requireTls: l.requireTls,
    maxMessageSize: config.limits.maxMessageSize,
    maxRecipients: config.limits.maxRecipients,
    maxLineLength: config.limits.maxLineLength,
    maxBadCommands: config.limits.maxBadCommands,
    maxCommands: config.limits.maxCommands,
    greetingDelayMs: l.greetingDelayMs,
    commandTimeoutMs: config.limits.commandTimeout,
    dataTimeoutMs: config.limits.dataTimeout,
    bareLineEndings: config.limits.bareLineEndings,
    chunking: true,
    smtputf8: true,
    requireTlsExtension: l.advertiseRequireTls,
  };
}

export interface SessionParts {
  readonly config: Config;
  readonly log: Logger;
  readonly clock: () => number;
  readonly directory: LocalDirectory & Authenticator;
  readonly spool: SpoolPort;
  readonly tunnel: { observe(clientAddress: string, helo: string | undefined, senderDomain: string | undefined): void | Promise<void> };
  /** The live state now (swapped by a reload). */
  live(): LiveState;
}

/** The session side of listener `l` — the same in this process and in an acceptor. */
export function sessionHostOptions(l: ListenerConfig, p: SessionParts, secureContext: tls.SecureContext | TlsContextSource): SessionHostOptions {
  return {
    name: l.name,
    protocol: protocolOptions(p.config, l, secureContext),
    handlerFactory: sessionFactory(l, p),
    onEvent: (event, detail) => p.log.info({ event: 'listener', listener: l.name, kind: event, ...detail }, event),
  };
}

/** A spool's writing end (Spool or SpoolIntake) as the sessions use it. */
export function spoolPortOf(spool: { begin(draft: NewEnvelope): SpoolWriter }): SpoolPort {
  // The queue hears of every commit from the spool itself (or, for an acceptor, from its primary).
  return { begin: async (draft) => spool.begin(draft), enqueued: () => undefined };
}

/** Who checks passwords (config auth.backend): our own directory, or Dovecot's auth socket. */
function authenticator(config: Config, directory: Authenticator): Authenticator {
  const d = config.auth.dovecot;
  if (config.auth.backend !== 'dovecot' || !d) return directory;
  const dovecot = new DovecotAuth({ socket: d.socket, service: d.service, timeoutMs: d.timeout });
  // AUTH is only ever offered over TLS (authWithoutTls: false), so the session is "secured".
  return { authenticate: (login, password) => dovecot.authenticate(login, password, { secured: true }) };
}

/** The handler factory of listener `l`: one session handler per connection. */
function sessionFactory(l: ListenerConfig, p: SessionParts): () => SessionHandler {
  const config = p.config;
  const auth = authenticator(config, p.directory);
  const srs = srsFromConfig(config, p.clock);
  return () => {
    const now = p.live();
    return createSessionHandler({
      log: p.log,
      hostname: config.hostname,
      listenerKind: l.kind,
      checks: now.pipeline.get(l.name)!,
      directory: p.directory,
      relay: now.relay,
      spool: p.spool,
      auth,
      authGuard: now.authGuard,
      tunnel: p.tunnel,
      clock: p.clock,
      postmasterDomain: config.domains[0] ?? config.hostname,
      // Mail from the world is classified; our own users' mail (submission) is not marked.
      ...(l.kind === 'mx' ? { content: now.content } : {}),
      ...(srs ? { srs } : {}),
      forwardJunk: config.forwarding.junk,
    });
  };
}

/**
 * The certificate the listeners offer: tls.cert and tls.key, or a self-signed pair made once in
 * dataDir (`quiet`: an acceptor reading the pair its primary made does not warn again).
 */
export async function loadTlsPair(config: Config, log: Logger, opts: { readonly quiet?: boolean } = {}): Promise<PemPair & { readonly context: tls.SecureContext }> {
  const configured = readConfiguredPair(config);
  if (configured) return configured;
  const acme = config.tls.acme;
  const stored = acme ? storedCertificate(acmeFiles(config.paths.acme), acme.hostnames) : undefined;
  if (stored) return { ...stored.pair, context: stored.context };
  const { certPath, keyPath, created } = await ensureSelfSignedCertificate(config.paths.tls, config.hostname);
  if (!opts.quiet && acme) log.info({ event: 'tls-self-signed', cert: certPath, created }, `no ACME certificate stored yet: a self-signed certificate for ${config.hostname} is used until it is issued`);
  else if (!opts.quiet) log.warn({ event: 'tls-self-signed', cert: certPath, created }, `no tls.cert configured: using a self-signed certificate for ${config.hostname} (fine for testing; set tls.cert and tls.key for the internet)`);
  const pair = { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
  return { ...pair, context: tls.createSecureContext({ ...pair, minVersion: 'TLSv1.2' }) };
}

/** tls.cert and tls.key read and paired (undefined when not configured); ConfigError names the setting. */
export function readConfiguredPair(config: Config): (PemPair & { readonly context: tls.SecureContext }) | undefined {
  if (config.tls.cert && config.tls.key) {
    const read = (file: string, key: 'tls.cert' | 'tls.key'): string => {
      try {
        return readFileSync(file, 'utf8');
      } catch (err) {
        throw new ConfigError(config.source, [{ path: key, message: `cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, fix: 'point it at a readable PEM file' }]);
      }
    };
    const pair = { cert: read(config.tls.cert, 'tls.cert'), key: read(config.tls.key, 'tls.key') };
    try {
      return { ...pair, context: tls.createSecureContext({ ...pair, minVersion: 'TLSv1.2' }) };
    } catch (err) {
      throw new ConfigError(config.source, [{ path: 'tls.cert', message: `the certificate and key cannot be used together: ${String(err)}`, fix: 'give the certificate chain and its private key, both PEM' }]);
    }
  }
  return undefined;
}

/** The swappable holder the listeners read, filled by loadTlsPair. */
export async function loadCertificateHolder(config: Config, log: Logger, opts: { readonly quiet?: boolean } = {}): Promise<CertificateHolder> {
  const { context, ...pair } = await loadTlsPair(config, log, opts);
  return new CertificateHolder(pair, context, certificateFacts(pair.cert));
}
