// Decides one policy request: reads the attributes into session and transaction facts, runs the
// protocol state's check list through the pipeline runner (first decisive verdict wins, errors
// and time-outs defer), maps the outcome to one action, and logs the decision as one line (a
// plain DUNNO at debug, counted in a summary line a minute).
import type { PolicydConfig, ProtocolState } from '../config/policyd-schema.ts';
import { parsePath, type Mailbox } from '../core/address.ts';
import { reply, replyText, type SmtpReply } from '../core/reply.ts';
import { reject, type Verdict } from '../core/verdict.ts';
import type { Logger } from '../observe/log.ts';
import { mailEvents } from '../observe/events.ts';
import { mailEvent, type MailEvent } from '../observe/maillog.ts';
import type { Answer, CheckContext, MessageFacts, SessionFacts, StageHandlers, TransactionFacts } from '../pipeline/check.ts';
import { runStage, type StageOutcome } from '../pipeline/runner.ts';
import { toAction, unfoldHeader, type ActionSettings } from './action.ts';
import type { CompiledPolicy } from './compile.ts';
import { readRequest, type PolicyRequest } from './request.ts';
import { LIST_OF } from './states.ts';

/** The answer to a request that cannot be judged: Postfix retries later, nothing is let through. */
export const TEMPFAIL_ACTION = 'DEFER 4.3.5 Policy service cannot read the request, please try again later';

export interface Decision {
  /** The value of `action=`. */
  readonly action: string;
}

export interface PolicyEngine {
  decide(attributes: ReadonlyMap<string, string>, signal?: AbortSignal, peer?: string): Promise<Decision>;
}

export interface EngineOptions {
  readonly policy: CompiledPolicy;
  readonly actions: ActionSettings;
  readonly kinds: Pick<PolicydConfig, 'listenerKind' | 'policyContexts' | 'serverPorts'>;
  readonly log: Logger;
  /** `RCPT TO:<Postmaster>` without a domain means postmaster@ this (RFC 5321 §4.1.1.3). */
  readonly postmasterDomain: string;
  /** Milliseconds since the epoch, for the minute of the decision summary; tests move their own. */
  readonly clock?: () => number;
}

// What one transaction (Postfix's `instance`) has been through: the headers already prepended,
// so a Received-SPF given at every RCPT reaches the message once, and the recipients we let
// through, which DATA and END-OF-MESSAGE checks see (Postfix names the recipient there only
// when there is one). Bounded: the oldest transactions are forgotten first.
const MAX_TRANSACTIONS = 10_000;
const MAX_RECIPIENTS = 1000;
const MAX_RECIPIENTS_HELD = 100_000;
// How often the count of decisions is logged (only when there were some).
const SUMMARY_MS = 60_000;

interface Transaction {
  readonly headers: Set<string>;
  readonly recipients: Mailbox[];
}

/** States inside a mail transaction (after MAIL FROM). */
const TX_STATES: ReadonlySet<ProtocolState> = new Set(['MAIL', 'RCPT', 'DATA', 'END-OF-MESSAGE']);

const EVENT: Record<Verdict['kind'], MailEvent> = { pass: 'accepted', score: 'accepted', permit: 'accepted', reject: 'rejected', defer: 'deferred', discard: 'discarded' };

export function createPolicyEngine(o: EngineOptions): PolicyEngine {
  const transactions = new Map<string, Transaction>();
  let held = 0; // recipients remembered over all transactions
  let sequence = 0;

  const forget = (instance: string): void => {
    const t = transactions.get(instance);
    if (!t) return;
    held -= t.recipients.length;
    transactions.delete(instance);
  };

  const transaction = (instance: string): Transaction | undefined => {
    if (instance === '') return undefined;
    let t = transactions.get(instance);
    if (!t) {
      if (transactions.size >= MAX_TRANSACTIONS) forget(transactions.keys().next().value!);
      t = { headers: new Set(), recipients: [] };
      transactions.set(instance, t);
    }
    return t;
  };

  const addRecipient = (instance: string, t: Transaction, rcpt: Mailbox): void => {
    if (t.recipients.length >= MAX_RECIPIENTS || t.recipients.some((m) => m.address === rcpt.address)) return;
    // A flood of open transactions must not grow memory without end: the oldest go first.
    while (held >= MAX_RECIPIENTS_HELD && transactions.size > 1) {
      const oldest = transactions.keys().next().value!;
      if (oldest === instance) break;
      forget(oldest);
    }
    t.recipients.push(rcpt);
    held++;
  };

  const kindOf = (r: PolicyRequest): SessionFacts['listenerKind'] =>
    (r.policyContext !== '' ? o.kinds.policyContexts[r.policyContext] : undefined) ?? o.kinds.serverPorts[String(r.serverPort)] ?? o.kinds.listenerKind;

  const facts = (r: PolicyRequest): SessionFacts => {
    const login = r.saslUsername.trim().toLowerCase();
    return {
      // SPF remembers its answer per session id for the RCPTs of one transaction.
      id: r.instance !== '' ? `policyd:${r.instance}` : `policyd:${++sequence}`,
      listener: r.policyContext !== '' ? `policyd:${r.policyContext}` : 'policyd',
      listenerKind: kindOf(r),
      clientAddress: r.clientAddress,
      clientPort: r.clientPort,
      ...(r.heloName !== '' ? { helo: r.heloName } : {}),
      ...(login !== '' ? { login } : {}),
      tls: r.encryptionProtocol !== '',
    };
  };

  type Parsed = { ok: true; from: Mailbox | null; rcpt: Mailbox | undefined } | { ok: false; reply: SmtpReply; reason: string };

  const addresses = (r: PolicyRequest): Parsed => {
    // Postfix gives addresses without angle brackets; the server's parser judges them alike.
    // RFC 5321 §4.1.2 syntax; SMTPUTF8 was Postfix's to enforce, so UTF-8 is allowed here.
    const sender = r.sender === '' ? { ok: true as const, mailbox: null } : parsePath(`<${r.sender}>`, { allowNull: true, smtputf8: true, role: 'sender' });
    if (!sender.ok) return { ok: false, reply: reply(sender.code, sender.enhanced, 'Bad sender address syntax'), reason: `sender ${JSON.stringify(r.sender)}: ${sender.error}` };
    if (r.recipient === '') return { ok: true, from: sender.mailbox, rcpt: undefined };
    const rcpt = parsePath(`<${r.recipient}>`, { allowNull: false, smtputf8: true, role: 'recipient', postmasterDomain: o.postmasterDomain });
    if (!rcpt.ok || !rcpt.mailbox) {
      const why = rcpt.ok ? 'null recipient' : rcpt.error;
      return { ok: false, reply: rcpt.ok ? reply(501, '5.1.3', 'Bad recipient address syntax') : reply(rcpt.code, rcpt.enhanced, 'Bad recipient address syntax'), reason: `recipient ${JSON.stringify(r.recipient)}: ${why}` };
    }
    return { ok: true, from: sender.mailbox, rcpt: rcpt.mailbox };
  };

  const run = async (r: PolicyRequest, session: SessionFacts, parsed: Parsed, t: Transaction | undefined, signal?: AbortSignal): Promise<StageOutcome> => {
    const list = o.policy.get(LIST_OF[r.state]);
    if (!list || list.checks.length === 0) return { verdict: { kind: 'pass' }, score: 0, rules: [], headers: [], tags: [] };
    // Addresses are judged only when a check will see them, as the server does at MAIL/RCPT.
    if (!parsed.ok) return { verdict: reject(parsed.reply, parsed.reason), check: 'address', score: 0, rules: [], headers: [], tags: [] };
    const { from, rcpt } = parsed;
    // At RCPT: the recipients let through before this one. At DATA and END-OF-MESSAGE: all of
    // them, or the one Postfix names when we did not see the RCPTs.
    const before = t?.recipients ?? [];
    const recipients = r.state === 'RCPT' ? before : before.length > 0 ? before : rcpt ? [rcpt] : [];
    const tx: TransactionFacts | undefined = TX_STATES.has(r.state) ? { mailFrom: from, recipients: [...recipients] } : undefined;
    const base: Omit<CheckContext, 'signal'> = tx ? { session, tx } : { session };
    // Made only for a DATA check: most requests are at RCPT.
    const message = (): MessageFacts => ({
      size: r.size,
      headers: [],
      raw: () => Promise.reject(new Error('Postfix sends no message content to a policy service')),
    });
    const stage = (h: StageHandlers): string | undefined => list.stageOf.get(h);
    const invoke = (h: StageHandlers, ctx: CheckContext): Answer | undefined => {
      switch (stage(h)) {
        case 'connect':
          return h.connect?.(ctx);
        case 'helo':
          // ETRN and CONNECT carry no HELO name; a HELO check then has nothing to judge.
          return session.helo === undefined ? undefined : h.helo?.(ctx, session.helo);
        case 'mail':
          return h.mail?.(ctx, from);
        case 'rcpt':
          return rcpt === undefined ? undefined : h.rcpt?.(ctx, rcpt);
        case 'data':
          return h.data?.(ctx, message());
        default:
          return undefined;
      }
    };
    const runnerStage = r.state === 'CONNECT' ? 'connect' : r.state === 'RCPT' || r.state === 'VRFY' ? 'rcpt' : r.state === 'END-OF-MESSAGE' ? 'data' : r.state === 'MAIL' || r.state === 'DATA' ? 'mail' : 'helo';
    return runStage(runnerStage, list.checks, base, invoke, o.log, signal);
  };

  // DUNNO answers are the bulk of a policy service's work and change nothing in Postfix: each is
  // logged at debug, and counted in one info line a minute (decision 0046). Every other
  // decision (reject, defer, PREPEND, OK, HOLD, DISCARD) stays one info line of its own.
  const clock = o.clock ?? Date.now;
  const counts = new Map<string, number>();
  let countedSince = clock();
  const count = (event: MailEvent, quiet: boolean): void => {
    const name = quiet ? 'dunno' : event;
    const now = clock();
    counts.set(name, (counts.get(name) ?? 0) + 1);
    if (now - countedSince < SUMMARY_MS) return;
    o.log.info({ event: 'policyd-decisions', seconds: Math.round((now - countedSince) / 1000), ...Object.fromEntries(counts) }, 'policy decisions since the last summary');
    counts.clear();
    countedSince = now;
  };
  // Whether a DUNNO's fields are needed at all: for the debug line or an in-process subscriber.
  const quietSeen = (): boolean => o.log.isLevelEnabled('debug') || mailEvents.listenerCount > 0;

  return {
    async decide(attributes, signal, peer) {
      const started = performance.now();
      const read = readRequest(attributes);
      if (!read.ok) {
        mailEvent(o.log, 'protocol', { listener: 'policyd', ...(peer ? { peer } : {}), reason: read.problem, action: TEMPFAIL_ACTION });
        return { action: TEMPFAIL_ACTION };
      }
      const r = read.request;
      const session = facts(r);
      const t = TX_STATES.has(r.state) ? transaction(r.instance) : undefined;
      const parsed = addresses(r);
      const out = await run(r, session, parsed, t, signal);
      const fresh = out.headers.length === 0 ? out.headers : out.headers.filter((h) => !t?.headers.has(h));
      const { action, prepended } = toAction(out, o.actions, { canPrepend: r.state !== 'END-OF-MESSAGE', pickHeader: () => fresh[0] });
      if (prepended !== undefined) t?.headers.add(prepended);
      const v = out.verdict;
      const rcpt = parsed.ok ? parsed.rcpt : undefined;
      if (t && r.state === 'RCPT' && rcpt && v.kind !== 'reject' && v.kind !== 'defer') addRecipient(r.instance, t, rcpt);
      // The message is in; nothing more will be asked about this transaction.
      if (r.state === 'END-OF-MESSAGE') forget(r.instance);
      const notPrepended = fresh.length === 0 ? fresh : fresh.filter((h) => h !== prepended).map(unfoldHeader);
      const event = EVENT[v.kind];
      const quiet = action === 'DUNNO' && notPrepended.length === 0 && out.score === 0;
      count(event, quiet);
      if (quiet && !quietSeen()) return { action };
      mailEvent(
        o.log,
        event,
        {
          session: session.id,
          listener: session.listener,
          stage: r.state,
          client: r.clientAddress,
          ...(r.queueId ? { queueId: r.queueId } : {}),
          ...(session.login ? { login: session.login } : {}),
          ...(r.heloName ? { helo: r.heloName } : {}),
          ...(r.sender !== '' || TX_STATES.has(r.state) ? { from: r.sender } : {}),
          ...(r.recipient ? { to: r.recipient } : {}),
          ...(out.check ? { check: out.check } : {}),
          ...('reason' in v ? { reason: v.reason } : {}),
          ...('reply' in v ? { reply: replyText(v.reply) } : {}),
          action,
          ...(out.score !== 0 ? { score: out.score, rules: out.rules } : {}),
          // One PREPEND per request: the rest are logged so nothing a check found is lost.
          ...(notPrepended.length > 0 ? { headersNotPrepended: notPrepended } : {}),
          ms: Math.round((performance.now() - started) * 10) / 10,
        },
        quiet,
      );
      return { action };
    },
  };
}
