// The one contract every restriction check implements: a name, the stages it serves, a zod
// schema for its options, and a factory that compiles those options once into stage handlers.
// Checks receive everything they use through the context; they never reach for globals.
import type { z } from 'zod';
import type { Verdict } from '../core/verdict.ts';
import type { Mailbox } from '../core/address.ts';
import type { Logger } from '../observe/log.ts';
import type { Stage } from '../config/schema.ts';
import type { Resolver } from 'node:dns/promises';
import type { Store } from '../store/store.ts';

export type { Stage };

/** The connection as every check sees it: the real client (after PROXY), never the proxy. */
export interface SessionFacts {
  readonly id: string;
  readonly listener: string;
  readonly listenerKind: 'mx' | 'submission' | 'submissions';
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly proxyPeer?: string;
  readonly helo?: string;
  readonly login?: string;
  readonly tls: boolean;
}

export interface TransactionFacts {
  /** Envelope sender; null for the null reverse-path <>. */
  readonly mailFrom: Mailbox | null;
  /** Recipients accepted so far. */
  readonly recipients: readonly Mailbox[];
}

/** The message at end of DATA, for content checks. */
export interface MessageFacts {
  readonly size: number;
  /** Header fields in order, unfolded, as [name, value]. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** False when the session kept only the start of a longer header block: read raw() for all. */
  readonly headerComplete?: boolean;
  /** The whole message (headers and body) as received. */
  readonly raw: () => Promise<Buffer>;
}

/** What the directory answers for one recipient address. */
export type RecipientResolution = { kind: 'local'; mailboxes: string[]; external: string[]; confirm?: string[] } | { kind: 'unknown' } | { kind: 'foreign' };

/** Where local domains, mailboxes and aliases are looked up. */
export interface LocalDirectory {
  isLocalDomain(domain: string): boolean;
  /** `confirm`: mailboxes kept outside (Dovecot's userdb) that confirmMailbox must prove exist. */
  resolveRecipient(address: string): RecipientResolution;
  /** True when a mailbox kept outside exists, false when not; rejects when the answer is in doubt. */
  confirmMailbox?(mailbox: string, signal?: AbortSignal): Promise<boolean>;
  /** The addresses a login owns: its own and the aliases that deliver to it (lower-case). */
  sendAsAllowed(login: string): string[];
}

/** What a check may use. Built once by the composition root. */
export interface CheckEnv {
  readonly log: Logger;
  /** Milliseconds since the epoch; tests inject their own. */
  readonly clock: () => number;
  readonly hostname: string;
  /** Our mail domains (lower-case). */
  readonly domains: readonly string[];
  readonly directory: LocalDirectory;
  /** DNS, asking the servers in config `dns.servers` (or the system's) with the configured time-out. */
  readonly dns: Resolver;
  /** relay.trustedNetworks: the operator's own hosts (greylisting skips them, as postgrey's users do). */
  readonly trustedNetworks?: readonly string[];
  /** Config `recipientDelimiter` ('' or unset: no subaddresses): `alice+tag@d` is alice's. */
  readonly recipientDelimiter?: string;
  /** Shared state (SQLite or Redis); operations reject with StoreUnavailableError when it is down. */
  readonly store: Store;
  /** Count DMARC evaluations for aggregate reports (config dmarcReports.send), per period of this length. */
  readonly dmarcReports?: { readonly intervalMs: number };
}

export interface CheckContext {
  readonly session: SessionFacts;
  readonly tx?: TransactionFacts;
  /** Aborted when the check's deadline passes or the client goes away. */
  readonly signal: AbortSignal;
  /**
   * At RCPT: the directory's answer for this stage's recipient, looked up at the first call and
   * kept for the RCPT, so the checks and the session's routing share one lookup. Absent where
   * no session provides it (policyd): use recipientOf.
   */
  readonly resolveRecipient?: () => RecipientResolution;
}

/** The directory's answer for the RCPT's recipient: the stage's shared lookup when there is one. */
export function recipientOf(ctx: CheckContext, env: CheckEnv, rcpt: Mailbox): RecipientResolution {
  return ctx.resolveRecipient ? ctx.resolveRecipient() : env.directory.resolveRecipient(rcpt.address);
}

/**
 * A check's answer. A check that needs no I/O for this call may answer at once, without a
 * promise: the runner then arms no deadline and awaits nothing for it (pipeline/runner.ts).
 */
export type Answer = Verdict | Promise<Verdict>;

export interface StageHandlers {
  connect?(ctx: CheckContext): Answer;
  helo?(ctx: CheckContext, name: string): Answer;
  mail?(ctx: CheckContext, from: Mailbox | null): Answer;
  rcpt?(ctx: CheckContext, rcpt: Mailbox): Answer;
  data?(ctx: CheckContext, message: MessageFacts): Answer;
}

export interface CheckDefinition<O extends z.ZodType = z.ZodType> {
  /** Config key, file name and log `check` field: the same string. */
  readonly name: string;
  readonly stages: readonly Stage[];
  /** Only checks declared here may answer permit; a permit from any other is treated as pass. */
  readonly canPermit?: boolean;
  /** Options under `checks.<name>` in the config; must accept an empty object. */
  readonly options: O;
  create(options: z.output<O>, env: CheckEnv): StageHandlers;
}

/** Identity function that keeps the option types of a check definition. */
export function defineCheck<O extends z.ZodType>(def: CheckDefinition<O>): CheckDefinition<O> {
  return def;
}
