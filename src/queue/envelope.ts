// The envelope of a queued message and the per-recipient delivery state, as stored in the spool
// and shared by receiving (which writes them) and delivery (which reads them). Also the checks a
// header read back from disk must pass before anything trusts it.

export type TransportName = 'local' | 'remote';

export interface EnvelopeRecipient {
  /** The RCPT TO address as accepted. */
  readonly address: string;
  /** The local mailbox address when it is delivered locally (after alias resolution). */
  readonly mailbox?: string;
  readonly transport: TransportName;
}

export interface EnvelopeClient {
  /** The real client address (after a trusted PROXY header). */
  readonly address: string;
  readonly helo?: string;
  readonly login?: string;
  readonly listener: string;
  readonly sessionId: string;
  readonly proxyPeer?: string;
}

export interface Envelope {
  readonly id: string;
  /** Milliseconds since the epoch. */
  readonly receivedAt: number;
  /** The reverse path without angle brackets; '' is the null sender (RFC 5321 §4.5.5). */
  readonly mailFrom: string;
  readonly recipients: readonly EnvelopeRecipient[];
  readonly client: EnvelopeClient;
  /** Why relaying was allowed, when a recipient is remote (e.g. "login", "network"). */
  readonly relayReason?: string;
  readonly smtputf8: boolean;
  readonly body: '7BIT' | '8BITMIME' | 'BINARYMIME';
  /**
   * Set when no bounce may ever be sent for this message, with the reason (e.g. "spam",
   * "auth-failed", "dsn"): mail classed as spam or failing authentication has a forged sender as
   * often as not, and a bounce to it is backscatter. Null-sender mail never bounces either way.
   */
  readonly noBounce?: string;
  /**
   * The envelope sender's own domain vouched for it: SPF passed for the MAIL FROM domain, or a
   * valid DKIM signature of that domain (or a parent) was on it. Forwarded mail from a stranger
   * bounces only then (a notice to an unverified sender is backscatter). Absent: not verified.
   */
  readonly senderVerified?: boolean;
  /**
   * The Maildir++ folder local delivery puts the message in (e.g. "Junk" for spam: the mailbox's
   * `.Junk`), instead of the inbox. Remote delivery ignores it. Absent in files of older versions.
   */
  readonly folder?: string;
  /**
   * MAIL FROM carried REQUIRETLS (RFC 8689): every next hop must be reached over TLS verified by
   * MTA-STS or DANE (or a verified smarthost) and must itself offer REQUIRETLS; otherwise the
   * message is not sent. Absent in files of older versions (and for ordinary mail).
   */
  readonly requireTls?: boolean;
  /** Bytes of the stored message (including the Received header the session prepended). */
  readonly size: number;
}

/** What `spool.begin` needs: the spool fills in `size`, and `id`/`receivedAt` when not given. */
export type NewEnvelope = Omit<Envelope, 'id' | 'size' | 'receivedAt'> & {
  /** A queue id made with `newQueueId()` (e.g. because the Received header names it already). */
  readonly id?: string;
  readonly receivedAt?: number;
};

export type RecipientStatus = 'pending' | 'delivered' | 'bounced' | 'deferred';

export interface RecipientState {
  readonly status: RecipientStatus;
  /** Delivery attempts made so far. */
  readonly attempts: number;
  /** When a deferred recipient is due again (ms since the epoch). */
  readonly nextAttemptAt?: number;
  /** The reply of the last attempt, for logs, `queue list` and the bounce. */
  readonly lastReply?: string;
  /** When this state was recorded. */
  readonly updatedAt?: number;
  /** A delay warning was sent for this recipient (kept while it stays deferred). */
  readonly warned?: boolean;
}

export const PENDING: RecipientState = Object.freeze({ status: 'pending', attempts: 0 });

/** Delivered and bounced are final: such a recipient is never attempted again. */
export const isFinal = (s: RecipientState): boolean => s.status === 'delivered' || s.status === 'bounced';

/**
 * A Maildir++ folder name we write to: letters, digits, "-" and "_" only. No dots (Maildir++ uses
 * them for sub-folders) and no slashes, so it can never name a path outside the mailbox.
 */
export const isFolderName = (v: unknown): v is string => typeof v === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(v);

const isStr = (v: unknown): v is string => typeof v === 'string';
const isOptStr = (v: unknown): boolean => v === undefined || typeof v === 'string';
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a header object read from disk; returns the reason it is unusable, or undefined when it
 * is a well-formed envelope (without `size`, which the file prefix carries).
 */
export function envelopeProblem(v: unknown): string | undefined {
  if (!isObj(v)) return 'header is not an object';
  if (!isStr(v.id)) return 'id missing';
  if (typeof v.receivedAt !== 'number' || !Number.isFinite(v.receivedAt)) return 'receivedAt missing';
  if (!isStr(v.mailFrom)) return 'mailFrom missing';
  if (!Array.isArray(v.recipients) || v.recipients.length === 0) return 'no recipients';
  for (const [i, r] of (v.recipients as unknown[]).entries()) {
    if (!isObj(r) || !isStr(r.address) || !isOptStr(r.mailbox) || (r.transport !== 'local' && r.transport !== 'remote')) {
      return `recipient ${i} malformed`;
    }
  }
  const c = v.client;
  if (!isObj(c) || !isStr(c.address) || !isStr(c.listener) || !isStr(c.sessionId) || !isOptStr(c.helo) || !isOptStr(c.login) || !isOptStr(c.proxyPeer)) {
    return 'client malformed';
  }
  if (!isOptStr(v.relayReason)) return 'relayReason malformed';
  if (!isOptStr(v.noBounce)) return 'noBounce malformed';
  if (v.senderVerified !== undefined && typeof v.senderVerified !== 'boolean') return 'senderVerified malformed';
  if (v.folder !== undefined && !isFolderName(v.folder)) return 'folder malformed';
  if (v.requireTls !== undefined && typeof v.requireTls !== 'boolean') return 'requireTls malformed';
  if (typeof v.smtputf8 !== 'boolean') return 'smtputf8 missing';
  if (v.body !== '7BIT' && v.body !== '8BITMIME' && v.body !== 'BINARYMIME') return 'body type malformed';
  return undefined;
}

const STATUSES: readonly string[] = ['pending', 'delivered', 'bounced', 'deferred'];

/** Checks a recipient state read back from a state record. */
export function isRecipientState(v: unknown): v is RecipientState {
  if (!isObj(v)) return false;
  if (!isStr(v.status) || !STATUSES.includes(v.status)) return false;
  if (typeof v.attempts !== 'number' || !Number.isInteger(v.attempts) || v.attempts < 0) return false;
  if (v.nextAttemptAt !== undefined && typeof v.nextAttemptAt !== 'number') return false;
  if (v.updatedAt !== undefined && typeof v.updatedAt !== 'number') return false;
  if (v.warned !== undefined && typeof v.warned !== 'boolean') return false;
  return isOptStr(v.lastReply);
}
