// The contract between the SMTP protocol engine (src/ingress/smtp/*, which owns the wire:
// line framing, command syntax, extensions, TLS, DATA/BDAT framing) and the session logic
// (src/ingress/session.ts, which owns every decision). The engine never decides policy: it asks
// the handler at every stage and sends what the handler answers.
import type { TLSSocket, SecureContext } from 'node:tls';
import type { TlsContextSource } from './tls.ts';
import type { SmtpReply } from '../../core/reply.ts';

/** Where a connection really comes from, after any trusted PROXY header was applied. */
export interface ConnectionInfo {
  /** Unique id of this SMTP session (short, log-friendly). */
  readonly id: string;
  /** Name of the listener that accepted it, e.g. "mx", "submission", "submissions". */
  readonly listener: string;
  /** The real client address (from the PROXY header when one was accepted), IPv4-mapped IPv6 unwrapped. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** Set when a PROXY header was accepted: the address of the proxy that sent it. */
  readonly proxyPeer?: string;
  /** Protocol version of that header. */
  readonly proxyVersion?: 1 | 2;
  /** A local submission (ingress/local-submit.ts): the login its proven uid maps to. The session
   *  starts logged in as it; remoteAddress then holds the provenance, e.g. local:uid=33(www-data). */
  readonly localLogin?: string;
}

/** Per-session facts the engine maintains and the handler may read. */
export interface SessionState {
  readonly conn: ConnectionInfo;
  /** True once TLS is up (implicit TLS or after STARTTLS). */
  readonly secure: boolean;
  readonly tlsProtocol?: string;
  readonly tlsCipher?: string;
  /** HELO/EHLO argument as given, and which verb. */
  readonly helo?: string;
  readonly esmtp: boolean;
  /** Authenticated login, once AUTH succeeded. */
  readonly login?: string;
}

/** Parameters of MAIL FROM / RCPT TO (RFC 5321 §4.1.2 Mail-parameters), keys upper-cased. */
export type SmtpParams = ReadonlyMap<string, string | true>;

export interface MailFromInfo {
  /** The path as written between (and including) the angle brackets, or the bare text if none. */
  readonly path: string;
  readonly params: SmtpParams;
  /** BODY=8BITMIME / BINARYMIME / 7BIT as declared (default 7BIT). */
  readonly body: '7BIT' | '8BITMIME' | 'BINARYMIME';
  /** SMTPUTF8 parameter present (RFC 6531). */
  readonly smtputf8: boolean;
  /** REQUIRETLS parameter present (RFC 8689): every later hop must be TLS, verified, and say REQUIRETLS. */
  readonly requireTls?: boolean;
  /** SIZE= declared by the client (RFC 1870), if any. */
  readonly declaredSize?: number;
}

export interface RcptToInfo {
  readonly path: string;
  readonly params: SmtpParams;
}

/** Facts about the message body the engine noticed while framing DATA/BDAT. */
export interface BodyFacts {
  /** Bytes written to the sink (after dot-unstuffing). */
  readonly size: number;
  /** A bare LF (not preceded by CR) was seen in the body (under `normalise`, as it came: the
   *  sink got a CRLF in its place). */
  readonly bareLf: boolean;
  /** A bare CR (not followed by LF) was seen in the body. */
  readonly bareCr: boolean;
  /** Delivered with BDAT (RFC 3030) rather than DATA. */
  readonly chunked: boolean;
}

/**
 * Receives the message body as it streams in, already dot-unstuffed (DATA) or as raw chunk
 * bytes (BDAT). The engine awaits `write` before reading more from the socket (back-pressure),
 * and sends the reply that `end` resolves to. `abort` is called instead of `end` when the
 * transaction dies (connection lost, size exceeded, RSET during BDAT, smuggling rejected).
 */
export interface MessageSink {
  write(chunk: Buffer): void | Promise<void>;
  end(facts: BodyFacts): Promise<SmtpReply>;
  abort(reason: string): void | Promise<void>;
}

export type AuthResult = { ok: true; login: string } | { ok: false; reply: SmtpReply };

/**
 * Implemented by the session logic. Every method may be async; the engine processes pipelined
 * commands strictly in order and never calls a method before the previous one resolved.
 * A method that throws is turned by the engine into `451 4.3.0` (never a success) and logged via
 * `onError`.
 */
export interface SessionHandler {
  /** Before the greeting. Return a 4xx/5xx reply to refuse the connection (sent, then closed). */
  onConnect(state: SessionState): Promise<SmtpReply | undefined>;
  /** HELO/EHLO. A non-2xx reply refuses it; the engine sends the 250 (with extensions) otherwise. */
  onHelo(state: SessionState, name: string): Promise<SmtpReply | undefined>;
  /** AUTH (RFC 4954), only ever called when TLS is up or the listener allows auth without TLS. */
  onAuth(state: SessionState, mechanism: 'PLAIN' | 'LOGIN', username: string, password: string, authzid: string): Promise<AuthResult>;
  /** MAIL FROM. Reply 250 to accept. */
  onMailFrom(state: SessionState, mail: MailFromInfo): Promise<SmtpReply>;
  /** RCPT TO. Reply 250/251 to accept. */
  onRcptTo(state: SessionState, rcpt: RcptToInfo): Promise<SmtpReply>;
  /**
   * DATA or first BDAT with at least one accepted recipient. Return a sink to receive the body,
   * or a reply to refuse (e.g. 554 when the transaction was discarded earlier is NOT a refusal:
   * return a sink that drops).
   */
  onDataStart(state: SessionState): Promise<MessageSink | SmtpReply>;
  /** RSET, a new EHLO, STARTTLS or end of transaction: forget the transaction. */
  onReset(state: SessionState): void;
  /** Connection closed, for whatever reason. */
  onClose(state: SessionState, reason: string): void;
  /** A protocol-level event worth a log line (bad command, time-out, early talker, TLS error). */
  onEvent(state: SessionState, event: string, detail: Record<string, unknown>): void;
}

/** Static settings of one listener, compiled from config. */
export interface ProtocolOptions {
  /** Name shown in the greeting and EHLO reply. */
  readonly hostname: string;
  /** Text after the hostname in the 220 greeting. */
  readonly banner: string;
  /** TLS material (fixed, or a holder swapped on renewal); without it STARTTLS is not offered and implicit TLS is impossible. */
  readonly tls?: SecureContext | TlsContextSource;
  /** Implicit TLS from the first byte (port 465 style, RFC 8314). */
  readonly implicitTls: boolean;
  /** Offer STARTTLS (RFC 3207) on a plain connection. */
  readonly starttls: boolean;
  /** Offer AUTH at all on this listener. */
  readonly auth: boolean;
  /** Offer/accept AUTH on a connection without TLS (never by default). */
  readonly authWithoutTls: boolean;
  /** Refuse MAIL FROM before AUTH succeeded with 530 5.7.0 (submission). */
  readonly requireAuth: boolean;
  /** Refuse MAIL FROM before STARTTLS with 530 5.7.0. */
  readonly requireTls: boolean;
  /** Maximum message size in bytes, advertised with SIZE and enforced (552 5.3.4). */
  readonly maxMessageSize: number;
  /** Maximum recipients per transaction (452 4.5.3 beyond). */
  readonly maxRecipients: number;
  /** Maximum command line length in bytes incl. CRLF (RFC 5321 §4.5.3.1.4: at least 512). */
  readonly maxLineLength: number;
  /** Unknown/bad commands allowed before 421 and disconnect. */
  readonly maxBadCommands: number;
  /** Command lines allowed per connection (over-long ones included) before 421. */
  readonly maxCommands: number;
  /** Milliseconds to wait before the greeting; a client that talks first gets 554 and is dropped. */
  readonly greetingDelayMs: number;
  /**
   * Time a client has for a whole command (or AUTH response) line, counted from when the engine
   * starts waiting for it, not from the last byte (RFC 5321 §4.5.3.2.7 suggests 5 minutes). In
   * DATA/BDAT it limits the pause between two packets.
   */
  readonly commandTimeoutMs: number;
  /** Deadline for a whole DATA transfer, or for all BDAT chunks of one message. */
  readonly dataTimeoutMs: number;
  /** What to do with a bare LF / bare CR in a message (SMTP smuggling): refuse the message
   *  (default), make each a CRLF before the sink gets it, or pass it on as it came. */
  readonly bareLineEndings: 'reject' | 'normalise' | 'accept';
  /** Offer CHUNKING/BDAT (RFC 3030). */
  readonly chunking: boolean;
  /** Offer SMTPUTF8 (RFC 6531) and 8BITMIME (RFC 6152). */
  readonly smtputf8: boolean;
  /** Offer REQUIRETLS (RFC 8689) in EHLO replies of TLS-protected sessions. Absent: not offered. */
  readonly requireTlsExtension?: boolean;
}

export type { TLSSocket };
