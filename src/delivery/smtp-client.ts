// One SMTP transaction to one server address, through nodemailer's SMTP connection (it speaks
// STARTTLS, AUTH, PIPELINING, SIZE, 8BITMIME, SMTPUTF8 and dot-stuffing), with its outcome sorted
// per recipient: 2xx delivered, 4xx temporary, 5xx permanent (RFC 5321 §4.2.1), or "unreachable"
// when nothing was handed over and the caller may try the next host.
import { connect as netConnect, isIP } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { DeliveryOutcome } from './transport.ts';

export type TlsMode =
  /** TLS from the first byte (port 465, RFC 8314). */
  | 'implicit'
  /** STARTTLS, and no transaction without it (RFC 3207). */
  | 'starttls'
  /** STARTTLS when offered, plain text otherwise (RFC 7435: opportunistic security, for MX). */
  | 'opportunistic'
  /** Never TLS: a local LMTP server on a unix socket or loopback, where nothing crosses a network. */
  | 'none';

export interface SmtpTarget {
  /** The IP address to connect to. */
  readonly address: string;
  readonly port: number;
  /** The host name: for logs, the DSN's Remote-MTA, SNI and the certificate check. */
  readonly name: string;
  readonly tls: TlsMode;
  /** Check the server certificate (against `ca`, or the system's CAs). Off for opportunistic MX TLS. */
  readonly verifyCertificate: boolean;
  readonly ca?: Buffer | readonly string[];
  /** AUTH credentials (smarthost only; only ever sent over TLS). */
  readonly auth?: { readonly user: string; readonly pass: string };
  /** Speak LMTP (RFC 2033: LHLO, then one reply per accepted recipient after DATA). */
  readonly lmtp?: boolean;
  /** Connect to this unix socket instead of address:port (a local LMTP server). */
  readonly socketPath?: string;
  /**
   * Checks the TLS session before MAIL FROM (DANE, RFC 7672 §3): a string is why the server is
   * not authenticated, and nothing is sent. Needs tls 'starttls' or 'implicit'.
   */
  readonly verifyPeer?: (socket: TLSSocket) => string | undefined;
  /**
   * The message carries REQUIRETLS (RFC 8689): MAIL FROM says REQUIRETLS, and a server that does
   * not offer it over TLS gets nothing (an "unreachable" result with `requireTlsRefused`).
   */
  readonly requireTlsExtension?: boolean;
}

export interface SmtpClientOptions {
  /** The name this server gives in EHLO. */
  readonly heloName: string;
  readonly connectTimeoutMs: number;
  readonly greetingTimeoutMs: number;
  /** Longest silence in a session before it is given up. */
  readonly socketTimeoutMs: number;
}

export interface OutboundEnvelope {
  /** '' is the null sender (MAIL FROM:<>). */
  readonly from: string;
  /** Distinct recipient addresses. */
  readonly to: readonly string[];
  /** Expected message size, for SIZE= (RFC 1870). */
  readonly size: number;
  readonly eightBit: boolean;
}

export interface RecipientReply {
  readonly outcome: DeliveryOutcome;
  /** One line: "250 2.0.0 Ok: queued as X". */
  readonly reply: string;
}

/** Why TLS failed, in RFC 8460 §4.3 result types (TLS-RPT reports them; MTA-STS decides on them). */
export type TlsFailureType = 'starttls-not-supported' | 'certificate-host-mismatch' | 'certificate-expired' | 'certificate-not-trusted' | 'validation-failure' | 'tlsa-invalid' | 'dnssec-invalid' | 'dane-required';

export type SendResult =
  /** Nothing was handed over (connection, greeting, TLS or AUTH failed): another host may be tried. */
  | { readonly kind: 'unreachable'; readonly reply: string; readonly tlsFailure?: TlsFailureType; readonly requireTlsRefused?: boolean }
  /** The transaction ran: an outcome for every recipient address. */
  | { readonly kind: 'sent'; readonly replies: ReadonlyMap<string, RecipientReply>; readonly tls: boolean };

interface SmtpError extends Error {
  code?: string;
  originalCode?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: SmtpError[];
}

/** A server reply on one line: continuation lines joined, their repeated code prefix dropped. */
export function oneLine(response: string): string {
  const lines = response.split(/\r?\n/).filter((l) => l !== '');
  if (lines.length === 0) return '';
  const first = lines[0]!;
  const code = /^(\d{3})[ -]/.exec(first)?.[1];
  const text = lines.map((l, i) => (code && l.startsWith(code) ? (i === 0 ? `${code} ${l.slice(4)}` : l.slice(4)) : l)).join(' ');
  return text.replace(/\s+/g, ' ').trim();
}

export function outcomeOf(code: number): DeliveryOutcome {
  if (code >= 200 && code < 300) return 'ok';
  return code >= 500 && code < 600 ? 'permanent' : 'temporary';
}

const hostText = (t: SmtpTarget): string => (t.socketPath !== undefined ? t.name : `${t.name}[${t.address}]:${t.port}`);

/** Why a session never got to MAIL FROM, as a temporary reply naming the host. */
function unreachable(t: SmtpTarget, err: SmtpError, stage: 'connect' | 'auth'): SendResult {
  const where = hostText(t);
  const server = err.response ? `: ${oneLine(err.response)}` : '';
  const sys = err.originalCode ?? (err.code === 'ETIMEDOUT' ? 'timed out' : undefined);
  if (stage === 'auth') return { kind: 'unreachable', reply: `454 4.7.0 authentication failed at ${where}${server}` };
  // Certificate and handshake failures surface as socket errors carrying OpenSSL's code.
  const tlsFailure = err.code === 'ETLS' || /CERT|SSL|TLS|UNABLE_TO_(GET|VERIFY)/.test(err.originalCode ?? '');
  if (tlsFailure) return { kind: 'unreachable', reply: `454 4.7.5 TLS failed with ${where}${server || `: ${err.originalCode ?? err.message}`}`, tlsFailure: tlsFailureType(err) };
  // requireTLS against a server that answers EHLO with an error and HELO cannot do STARTTLS.
  if (/does not support required STARTTLS/.test(err.message)) return { kind: 'unreachable', reply: `454 4.7.5 ${where} offers no STARTTLS${server}`, tlsFailure: 'starttls-not-supported' };
  if (err.response) return { kind: 'unreachable', reply: `451 4.4.1 ${where} refused to talk to me${server}` };
  // RFC 3463 X.4.1: no answer from host; X.4.2: bad connection.
  return { kind: 'unreachable', reply: `451 4.4.1 connect to ${where}: ${sys ?? err.message}` };
}

/** The RFC 8460 result type of a failed STARTTLS or handshake, from nodemailer's error. */
function tlsFailureType(err: SmtpError): TlsFailureType {
  // The server refused the STARTTLS command (it offers none, or a proxy stripped it).
  if (err.response && (err.command === 'STARTTLS' || /STARTTLS/.test(err.message))) return 'starttls-not-supported';
  const text = `${err.originalCode ?? ''} ${err.message}`;
  if (/altname|does not match certificate|HOSTNAME_MISMATCH/i.test(text)) return 'certificate-host-mismatch';
  if (/expired|CERT_HAS_EXPIRED|not yet valid/i.test(text)) return 'certificate-expired';
  if (/self[- ]signed|unable to (get|verify)|UNABLE_TO|not trusted|unknown ca|SELF_SIGNED/i.test(text)) return 'certificate-not-trusted';
  return 'validation-failure';
}

// nodemailer's client loads at the first delivery, not on the way to the listener (0033).
let smtpConnection: Promise<typeof SMTPConnection> | undefined;
const loadSmtpConnection = (): Promise<typeof SMTPConnection> => (smtpConnection ??= import('nodemailer/lib/smtp-connection').then((m) => m.default));

/**
 * Runs one transaction. Resolves; never rejects: every failure becomes a reply. `body` is called
 * at most once, only when the envelope is being sent. `onClosed` gets a promise of the
 * connection's end (at most 2 s after the outcome).
 */
export async function sendMessage(
  target: SmtpTarget,
  opts: SmtpClientOptions,
  env: OutboundEnvelope,
  body: () => Readable,
  onClosed?: (closed: Promise<void>) => void,
  onAccepted?: (address: string, reply: string) => void,
): Promise<SendResult> {
  const Connection = await loadSmtpConnection();
  return new Promise((resolve) => {
    let settled = false;
    let stage: 'connect' | 'auth' | 'send' = 'connect';
    const conn = new Connection({
      ...(target.socketPath !== undefined ? { connection: netConnect({ path: target.socketPath }) } : {}),
      ...(target.lmtp ? { lmtp: true } : {}),
      host: target.address,
      port: target.port,
      ...(isIP(target.name) ? {} : { servername: target.name }),
      secure: target.tls === 'implicit',
      requireTLS: target.tls === 'starttls',
      opportunisticTLS: target.tls === 'opportunistic',
      ignoreTLS: target.tls === 'none',
      name: opts.heloName,
      connectionTimeout: opts.connectTimeoutMs,
      greetingTimeout: opts.greetingTimeoutMs,
      socketTimeout: opts.socketTimeoutMs,
      socketCloseTimeout: 1000,
      tls: { rejectUnauthorized: target.verifyCertificate, minVersion: 'TLSv1.2', ...(target.ca ? { ca: Buffer.isBuffer(target.ca) ? target.ca : [...target.ca] } : {}) },
      // Never hand the session (it carries AUTH) to a logger.
      logger: false,
      debug: false,
    });
    const finish = (r: SendResult): void => {
      if (settled) return;
      settled = true;
      // The outcome is reported at once (the sooner it is recorded, the smaller a crash's window
      // for a second delivery); the caller's connection slot waits for the connection's end, so
      // the next session does not open while QUIT is still under way (over the receiver's limit).
      onClosed?.(
        conn.destroyed
          ? Promise.resolve()
          : new Promise<void>((done) => {
              const limit = setTimeout(done, 2000);
              limit.unref();
              conn.once('end', () => {
                clearTimeout(limit);
                done();
              });
            }),
      );
      resolve(r);
      if (r.kind === 'sent' && stage === 'send' && !conn.destroyed) {
        try {
          conn.quit();
        } catch {
          conn.close();
        }
      } else {
        conn.close();
      }
    };
    if (target.lmtp && onAccepted) hearLmtpReplies(conn, onAccepted);
    const allTemporary = (reply: string): SendResult => ({ kind: 'sent', replies: new Map(env.to.map((a) => [a, { outcome: 'temporary', reply }])), tls: conn.secure });
    conn.on('error', (err: SmtpError) => {
      // In the send stage the send callback reports the same error with more detail.
      if (stage !== 'send') finish(unreachable(target, err, stage));
      else setImmediate(() => finish(allTemporary(`451 4.4.2 lost connection with ${hostText(target)}: ${err.response ? oneLine(err.response) : err.message}`)));
    });
    conn.once('end', () => {
      if (stage !== 'send') finish({ kind: 'unreachable', reply: `451 4.4.2 ${hostText(target)} closed the connection` });
      else setImmediate(() => finish(allTemporary(`451 4.4.2 lost connection with ${hostText(target)}`)));
    });
    const send = (): void => {
      stage = 'send';
      let stream: Readable;
      try {
        stream = body();
      } catch (err) {
        finish(allTemporary(`451 4.3.0 cannot read the queued message: ${(err as Error).message}`));
        return;
      }
      conn.send({ from: env.from, to: [...env.to], size: env.size, use8BitMime: env.eightBit, ...(target.requireTlsExtension ? { requireTLSExtensionEnabled: true } : {}) }, stream, (err, info) => {
        if (err) {
          finish(sendFailure(target, env, err, conn.secure));
          return;
        }
        const replies = new Map<string, RecipientReply>();
        // In LMTP the last reply belongs to the last recipient, who may have been refused.
        const ok = target.lmtp && !info.response.startsWith('2') ? '250 2.0.0 Delivered' : oneLine(info.response);
        for (const a of info.accepted) replies.set(a, { outcome: 'ok', reply: ok });
        for (const e of (info.rejectedErrors ?? []) as SmtpError[]) addRejected(replies, e);
        finish({ kind: 'sent', replies: complete(replies, env, `451 4.3.0 no reply from ${hostText(target)} for this recipient`), tls: conn.secure });
      });
    };
    conn.connect(() => {
      if (target.verifyPeer) {
        // nodemailer keeps the upgraded socket here; the check runs after STARTTLS and EHLO, before MAIL.
        const sock = (conn as unknown as { _socket?: unknown })._socket;
        const why = conn.secure && sock instanceof TLSSocket ? target.verifyPeer(sock) : 'the session is not encrypted';
        if (why !== undefined) {
          finish({ kind: 'unreachable', reply: `454 4.7.5 TLS authentication of ${hostText(target)} failed: ${why}`, tlsFailure: 'tlsa-invalid' });
          return;
        }
      }
      if (target.requireTlsExtension) {
        // Checked before AUTH and MAIL: nothing of a REQUIRETLS message goes to a server without it.
        const offered = (conn as unknown as { _supportedExtensions?: unknown })._supportedExtensions;
        const why = !conn.secure ? 'the session is not encrypted' : Array.isArray(offered) && offered.includes('REQUIRETLS') ? undefined : 'it does not offer REQUIRETLS';
        if (why !== undefined) {
          finish({ kind: 'unreachable', reply: `450 4.7.30 REQUIRETLS message not sent to ${hostText(target)}: ${why}`, requireTlsRefused: true });
          return;
        }
      }
      if (!target.auth) return send();
      stage = 'auth';
      conn.login({ user: target.auth.user, pass: target.auth.pass }, (err) => {
        if (err) finish(unreachable(target, err, 'auth'));
        else send();
      });
    });
  });
}

/**
 * nodemailer answers an LMTP DATA once, after the last recipient's reply; this hears each 2xx
 * reply as it arrives (RFC 2033 §4.2), so the queue can record that recipient as delivered before
 * the transaction (and the rest of the pass) ends. It wraps nodemailer's per-reply step of its
 * LMTP data stage (an internal of the pinned version); without it, nothing breaks: the
 * recipients are recorded with the pass, as before (test/dovecot/lmtp-crash.test.ts notices).
 */
function hearLmtpReplies(conn: SMTPConnection, onAccepted: (address: string, reply: string) => void): void {
  type Step = (this: unknown, recipient: string, final: boolean, str: string, cb: unknown) => unknown;
  const c = conn as unknown as { _actionLMTPStream?: Step };
  const step = c._actionLMTPStream;
  if (typeof step !== 'function') return;
  c._actionLMTPStream = function (this: unknown, recipient, final, str, cb) {
    if (str.startsWith('2')) onAccepted(recipient, oneLine(str));
    return step.call(this, recipient, final, str, cb);
  };
}

function addRejected(replies: Map<string, RecipientReply>, e: SmtpError): void {
  if (!e.recipient) return;
  const code = e.responseCode ?? 451;
  replies.set(e.recipient, { outcome: outcomeOf(code), reply: e.response ? oneLine(e.response) : `${code} ${e.message}` });
}

/** Every recipient gets a reply; one the server never answered for is temporary. */
function complete(replies: Map<string, RecipientReply>, env: OutboundEnvelope, fallback: string): Map<string, RecipientReply> {
  for (const a of env.to) if (!replies.has(a)) replies.set(a, { outcome: 'temporary', reply: fallback });
  return replies;
}

/** The failed transaction, per recipient. */
function sendFailure(target: SmtpTarget, env: OutboundEnvelope, err: SmtpError, tls: boolean): SendResult {
  const replies = new Map<string, RecipientReply>();
  const all = (outcome: DeliveryOutcome, reply: string): SendResult => ({ kind: 'sent', replies: new Map(env.to.map((a) => [a, { outcome, reply }])), tls });
  if (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') {
    if (err.rejectedErrors && err.rejectedErrors.length > 0) {
      // Every recipient was refused, each with its own reply.
      for (const e of err.rejectedErrors) addRejected(replies, e);
      return { kind: 'sent', replies: complete(replies, env, `451 4.3.0 no reply from ${hostText(target)} for this recipient`), tls };
    }
    if (err.responseCode) {
      // MAIL FROM, DATA or the final reply refused: it applies to the whole message.
      return all(outcomeOf(err.responseCode), oneLine(err.response ?? ''));
    }
    // RFC 1870 §6.1: the server announced a SIZE limit below this message.
    if (/larger than allowed/.test(err.message)) return all('permanent', `552 5.3.4 message size exceeds the limit of ${hostText(target)}`);
  }
  if (err.code === 'ESTREAM') return all('temporary', `451 4.3.0 reading the queued message failed: ${err.message}`);
  return all('temporary', `451 4.4.2 lost connection with ${hostText(target)}: ${err.response ? oneLine(err.response) : err.message}`);
}
