// The session logic behind the protocol engine: at every SMTP stage it asks the pipeline, applies
// the relay gate, routes recipients, and at end of DATA acts on the total score (content.ts) and
// commits the message durably to the spool before answering 250. Deny by default: a recipient is
// accepted only when it routes.
import type { Logger } from '../observe/log.ts';
import { mailEvent } from '../observe/maillog.ts';
import { parsePath, type Mailbox } from '../core/address.ts';
import { Replies, perm, reply, replyText, type SmtpReply } from '../core/reply.ts';
import type { Verdict, VerdictTag } from '../core/verdict.ts';
import type { LocalDirectory, MessageFacts, RecipientResolution, SessionFacts } from '../pipeline/check.ts';
import { runStage, type PlacedCheck, type StageOutcome } from '../pipeline/runner.ts';
import type { Stage } from '../config/schema.ts';
import type { RelayPolicy } from '../checks/relay.ts';
import { receivedHeader } from './received.ts';
import { parseHeaderFields } from '../core/headers.ts';
import { headerBlockEnd } from '../core/header-block.ts';
import { forwardsKeptBack, type ForwardJunk } from './forward-junk.ts';
import { FORWARD_REASON, SRS_REASON } from '../core/relay-reason.ts';
import { srsRecipient, type SrsReverser } from './srs-return.ts';
import type { AuthGuard } from './auth-guard.ts';
import { decideContent, editHead, type ContentPolicy, type StageScore } from './content.ts';
import type { CommitAmendment } from '../queue/writer.ts';
import type { AuthResult, BodyFacts, MailFromInfo, MessageSink, RcptToInfo, SessionHandler, SessionState } from './smtp/types.ts';

/** One recipient as the spool records it: the address given at RCPT and where it goes. */
export interface RoutedRecipient {
  readonly address: string;
  /** Final target: a local mailbox address, or the remote address for transport "remote". */
  readonly mailbox: string;
  readonly transport: 'local' | 'remote';
}

export interface SpoolDraft {
  readonly mailFrom: string;
  readonly recipients: readonly RoutedRecipient[];
  readonly client: { readonly address: string; readonly helo?: string; readonly login?: string; readonly listener: string; readonly sessionId: string; readonly proxyPeer?: string };
  readonly relayReason?: string;
  readonly smtputf8: boolean;
  readonly body: '7BIT' | '8BITMIME' | 'BINARYMIME';
  /** MAIL FROM carried REQUIRETLS (RFC 8689). */
  readonly requireTls?: boolean;
}

export interface SpoolWriterPort {
  readonly id: string;
  write(chunk: Buffer): Promise<void>;
  /** Puts header fields before everything written so far (before commit). */
  prepend(bytes: Buffer): Promise<void>;
  /** Replaces the header block written so far with what `edit` makes of it (before commit). */
  rewriteHead(edit: (head: Buffer) => Buffer): Promise<void>;
  /** The message bytes written so far. */
  readBack(): Promise<Buffer>;
  /**
   * Resolves only when the message file and its directory are fsync'd. `amend` sets envelope
   * fields decided at end of DATA; `area: 'quarantine'` keeps it from delivery.
   */
  commit(amend?: CommitAmendment): Promise<void>;
  abort(): Promise<void> | void;
}

/** What the session needs of the queue: a durable writer, and a way to wake delivery. */
export interface SpoolPort {
  begin(draft: SpoolDraft): Promise<SpoolWriterPort>;
  enqueued(id: string): void;
}

export interface Authenticator {
  authenticate(login: string, password: string): Promise<boolean>;
}

export interface SessionDeps {
  readonly log: Logger;
  readonly hostname: string;
  readonly listenerKind: SessionFacts['listenerKind'];
  readonly checks: Readonly<Record<Stage, readonly PlacedCheck[]>>;
  readonly directory: LocalDirectory;
  readonly relay: RelayPolicy;
  readonly spool: SpoolPort;
  readonly auth: Authenticator;
  readonly authGuard: AuthGuard;
  readonly clock: () => number;
  /** Watches for one address showing many HELO names and sender domains: a collapsed tunnel. */
  readonly tunnel?: { observe(clientAddress: string, helo: string | undefined, senderDomain: string | undefined): void | Promise<void> };
  /** RCPT TO:<Postmaster> without a domain means postmaster@ this domain (RFC 5321 §4.1.1.3). */
  readonly postmasterDomain: string;
  /**
   * What the total score means (checks.spam thresholds): X-Spam-* fields, Subject prefix, Junk
   * folder, quarantine. Undefined: no classification (tags still stop bounces).
   */
  readonly content?: ContentPolicy;
  /** Bounces to our SRS addresses go back to the original sender (srs-return.ts). */
  readonly srs?: SrsReverser;
  /** forwarding.junk (forward-junk.ts); default 'not-forwarded'. */
  readonly forwardJunk?: ForwardJunk;
}

interface Transaction {
  from: Mailbox | null;
  mail: MailFromInfo;
  accepted: Mailbox[];
  routes: RoutedRecipient[];
  relayReasons: Set<string>;
  /** Header fields from rcpt-stage checks of accepted recipients (e.g. Received-SPF), once each. */
  headers: string[];
  discardReason?: string;
  mailScore: StageScore;
  /** The highest rcpt-stage score of an accepted recipient (checks run once per recipient). */
  rcptScore?: StageScore;
  /** Tags from the mail stage, accepted recipients and the data stage. */
  tags: Set<VerdictTag>;
}

const NO_SCORE: StageScore = Object.freeze({ score: 0, rules: [] });
const scoreOf = (out: StageOutcome): StageScore => (out.score === 0 && out.rules.length === 0 ? NO_SCORE : { score: out.score, rules: out.rules });

const CLIENT_GONE = new Error('client went away');

// Bytes of the message head kept for data-stage checks (headers are what they read first).
const HEAD_LIMIT = 64 * 1024;

export function createSessionHandler(deps: SessionDeps): SessionHandler {
  const facts: { -readonly [K in keyof SessionFacts]: SessionFacts[K] } = {
    id: '',
    listener: '',
    listenerKind: deps.listenerKind,
    clientAddress: '',
    clientPort: 0,
    tls: false,
  };
  let tx: Transaction | undefined;
  // Points given at connect and HELO (e.g. a DNS list placed there) count for every message.
  let connectScore = NO_SCORE;
  let heloScore = NO_SCORE;
  const closed = new AbortController();
  const log = deps.log;

  const base = (s: SessionState): Record<string, unknown> => ({
    session: s.conn.id,
    client: s.conn.remoteAddress,
    ...(s.conn.proxyPeer ? { proxy: s.conn.proxyPeer } : {}),
    listener: s.conn.listener,
    ...(facts.login ? { login: facts.login } : {}),
  });

  const sync = (s: SessionState): void => {
    facts.id = s.conn.id;
    facts.listener = s.conn.listener;
    facts.clientAddress = s.conn.remoteAddress;
    facts.clientPort = s.conn.remotePort;
    if (s.conn.proxyPeer) facts.proxyPeer = s.conn.proxyPeer;
    // A local submission is logged in by the uid the kernel proved (ingress/local-submit.ts).
    if (s.conn.localLogin !== undefined) facts.login = s.conn.localLogin;
    if (s.helo !== undefined) facts.helo = s.helo;
    facts.tls = s.secure;
  };

  const stage = (name: Stage, invoke: Parameters<typeof runStage>[3], resolveRecipient?: () => RecipientResolution): Promise<StageOutcome> => {
    const t = tx ? { mailFrom: tx.from, recipients: tx.accepted } : undefined;
    const base = t ? { session: facts, tx: t } : { session: facts };
    return runStage(name, deps.checks[name], resolveRecipient ? { ...base, resolveRecipient } : base, invoke, log, closed.signal);
  };

  /** Turns a refusing verdict into the reply, with one log line naming the check. */
  const refuse = (s: SessionState, st: Stage, out: StageOutcome, extra: Record<string, unknown>): SmtpReply | undefined => {
    const v: Verdict = out.verdict;
    if (v.kind !== 'reject' && v.kind !== 'defer') return undefined;
    mailEvent(log, v.kind === 'reject' ? 'rejected' : 'deferred', { ...base(s), ...extra, stage: st, check: out.check, reason: v.reason, reply: replyText(v.reply) });
    return v.reply;
  };

  return {
    async onConnect(s) {
      sync(s);
      mailEvent(log, 'connect', base(s));
      // Failed logins never refuse a connection: they limit AUTH only (auth-guard.ts).
      const out = await stage('connect', (h, ctx) => h.connect?.(ctx));
      connectScore = scoreOf(out);
      return refuse(s, 'connect', out, {});
    },

    async onHelo(s, name) {
      sync(s);
      facts.helo = name;
      tx = undefined;
      const out = await stage('helo', (h, ctx) => h.helo?.(ctx, name));
      heloScore = scoreOf(out);
      return refuse(s, 'helo', out, { helo: name });
    },

    async onAuth(s, mechanism, username, password, authzid): Promise<AuthResult> {
      sync(s);
      const login = username.trim().toLowerCase();
      // RFC 4954 §4: an authorization identity other than the login would let one login act
      // as another; we do not support proxy authorization.
      const verify = async (): Promise<boolean> => (await deps.auth.authenticate(login, password)) && (authzid === '' || authzid.toLowerCase() === login);
      const out = await deps.authGuard.attempt(facts.clientAddress, login, verify, closed.signal);
      mailEvent(log, 'auth', { ...base(s), mechanism, login, result: out.result, ...(out.ok ? {} : out.detail) });
      if (!out.ok) return { ok: false, reply: out.reply };
      facts.login = login;
      return { ok: true, login };
    },

    async onMailFrom(s, mail) {
      sync(s);
      const parsed = parsePath(mail.path, { allowNull: true, smtputf8: mail.smtputf8, role: 'sender' });
      if (!parsed.ok) {
        const r = reply(parsed.code, parsed.enhanced, parsed.code === 553 ? 'Sender address rejected: bad address syntax' : 'Bad sender address syntax');
        mailEvent(log, 'rejected', { ...base(s), stage: 'mail', from: mail.path, reason: parsed.error, reply: replyText(r) });
        return r;
      }
      tx = { from: parsed.mailbox, mail, accepted: [], routes: [], relayReasons: new Set(), headers: [], mailScore: NO_SCORE, tags: new Set() };
      const from = parsed.mailbox;
      // A promise when the verdict is made elsewhere (acceptor processes) and matters here.
      await deps.tunnel?.observe(facts.clientAddress, facts.helo, from?.domain);
      const out = await stage('mail', (h, ctx) => h.mail?.(ctx, from));
      const refused = refuse(s, 'mail', out, { from: from?.address ?? '' });
      if (refused) {
        tx = undefined;
        return refused;
      }
      if (out.verdict.kind === 'discard') tx.discardReason = out.verdict.reason;
      tx.mailScore = scoreOf(out);
      for (const tag of out.tags) tx.tags.add(tag);
      return reply(250, '2.1.0', 'Sender OK');
    },

    async onRcptTo(s, rcpt: RcptToInfo) {
      sync(s);
      const t = tx;
      if (!t) return perm('5.5.1', 'Bad sequence of commands', 503);
      const parsed = parsePath(rcpt.path, { allowNull: false, smtputf8: t.mail.smtputf8, role: 'recipient', postmasterDomain: deps.postmasterDomain });
      if (!parsed.ok || !parsed.mailbox) {
        const r = parsed.ok ? perm('5.1.3', 'Bad recipient address syntax', 501) : reply(parsed.code, parsed.enhanced, 'Bad recipient address syntax');
        mailEvent(log, 'rejected', { ...base(s), stage: 'rcpt', from: t.from?.address ?? '', to: rcpt.path, reason: parsed.ok ? 'null recipient' : parsed.error, reply: replyText(r) });
        return r;
      }
      const to = parsed.mailbox;
      const logCtx = { from: t.from?.address ?? '', to: to.address };
      // A bounce to an SRS address of ours goes to the sender it stands for; a forged or expired
      // one is refused here, before anything else may look at it.
      const back = srsRecipient(deps.srs, to, t.from, t.mail.smtputf8);
      if (back.kind === 'refuse') {
        mailEvent(log, 'rejected', { ...base(s), ...logCtx, stage: 'rcpt', check: 'srs', reason: back.reason, reply: replyText(back.reply) });
        return back.reply;
      }
      // The checks (the outbound guard among them) and routing see where the mail goes.
      const target = back.kind === 'return' ? back.target : to;
      // The relay gate comes first and no check can skip it: a permit from the list may spare
      // later checks, never the decision whether mail may leave for a foreign domain.
      const localDomain = deps.directory.isLocalDomain(target.domain);
      const relay =
        back.kind === 'return'
          ? { allowed: true as const, reason: `${SRS_REASON}${deps.srs!.domain}` }
          : deps.relay.decide({ localDomain, clientAddress: facts.clientAddress, ...(facts.login ? { login: facts.login } : {}) });
      if (!relay.allowed) {
        const r = Replies.relayDenied;
        mailEvent(log, 'rejected', { ...base(s), ...logCtx, stage: 'rcpt', check: 'relay', reason: relay.reason, reply: replyText(r) });
        return r;
      }
      // One directory lookup per RCPT, made by the first check that asks and kept for the
      // others and for routing (bench/results/profile.md found it made twice).
      let resolution: RecipientResolution | undefined;
      const resolve = (): RecipientResolution => (resolution ??= localDomain ? deps.directory.resolveRecipient(target.address) : { kind: 'foreign' });
      const out = await stage('rcpt', (h, ctx) => h.rcpt?.(ctx, target), resolve);
      const refused = refuse(s, 'rcpt', out, logCtx);
      if (refused) return refused;
      if (out.verdict.kind === 'discard' || t.discardReason) {
        mailEvent(log, 'discarded', { ...base(s), ...logCtx, stage: 'rcpt', check: out.check, reason: out.verdict.kind === 'discard' ? out.verdict.reason : t.discardReason });
        t.accepted.push(to);
        return reply(250, '2.1.5', 'Recipient OK');
      }
      const routes = route(target, localDomain, resolve).map((r) => ({ ...r, address: to.address }));
      if (routes.length === 0) {
        // Unroutable even though no check refused it (e.g. the recipient check was removed from
        // the list): refuse rather than accept mail we would have to bounce.
        const r = perm('5.1.1', 'User unknown in local recipient table');
        mailEvent(log, 'rejected', { ...base(s), ...logCtx, stage: 'rcpt', check: 'route', reason: `no mailbox or alias ${to.address}`, reply: replyText(r) });
        return r;
      }
      if (!localDomain) t.relayReasons.add(relay.reason);
      // An alias (or catch-all) that forwards outside is outbound mail too: it says so, so that
      // delivery does not sign it as ours and a refusal does not bounce to an unverified sender.
      else if (routes.some((r) => r.transport === 'remote')) t.relayReasons.add(`${FORWARD_REASON}${to.address}`);
      for (const r of routes) {
        if (!t.routes.some((x) => x.mailbox === r.mailbox && x.transport === r.transport)) t.routes.push(r);
      }
      for (const h of out.headers) if (!t.headers.includes(h)) t.headers.push(h);
      for (const tag of out.tags) t.tags.add(tag);
      if (t.rcptScore === undefined || out.score > t.rcptScore.score) t.rcptScore = scoreOf(out);
      t.accepted.push(to);
      return reply(250, '2.1.5', 'Recipient OK');
    },

    async onDataStart(s): Promise<MessageSink | SmtpReply> {
      sync(s);
      const t = tx;
      if (!t || t.accepted.length === 0) return perm('5.5.1', 'No valid recipients', 554);
      if (t.routes.length === 0) return discardingSink(s, t);
      const draft: SpoolDraft = {
        mailFrom: t.from?.address ?? '',
        recipients: t.routes,
        client: {
          address: facts.clientAddress,
          listener: facts.listener,
          sessionId: facts.id,
          ...(facts.helo ? { helo: facts.helo } : {}),
          ...(facts.login ? { login: facts.login } : {}),
          ...(facts.proxyPeer ? { proxyPeer: facts.proxyPeer } : {}),
        },
        ...(t.relayReasons.size > 0 ? { relayReason: [...t.relayReasons].join(',') } : {}),
        smtputf8: t.mail.smtputf8,
        body: t.mail.body,
        ...(t.mail.requireTls ? { requireTls: true } : {}),
      };
      let writer: SpoolWriterPort;
      try {
        writer = await deps.spool.begin(draft);
      } catch (err) {
        log.error({ ...base(s), err: String(err) }, 'cannot open a spool file; deferring');
        return Replies.storageFull;
      }
      const received = receivedHeader({
        clientAddress: facts.clientAddress,
        hostname: deps.hostname,
        queueId: writer.id,
        esmtp: s.esmtp,
        tls: s.secure,
        authenticated: facts.login !== undefined,
        smtputf8: t.mail.smtputf8,
        date: new Date(deps.clock()),
        ...(facts.helo ? { helo: facts.helo } : {}),
        ...(s.tlsProtocol ? { tlsProtocol: s.tlsProtocol } : {}),
        ...(s.tlsCipher ? { tlsCipher: s.tlsCipher } : {}),
        ...(t.accepted.length === 1 && t.accepted[0] ? { singleRecipient: t.accepted[0].address } : {}),
      });
      const head: Buffer[] = [];
      let headBytes = 0;
      let failed: string | undefined;
      const writeSafe = async (chunk: Buffer): Promise<void> => {
        if (failed) return;
        try {
          await writer.write(chunk);
        } catch (err) {
          failed = String(err);
        }
      };
      await writeSafe(Buffer.from(received, 'latin1'));
      return {
        write: async (chunk) => {
          if (headBytes < HEAD_LIMIT) {
            head.push(chunk);
            headBytes += chunk.length;
          }
          await writeSafe(chunk);
        },
        abort: async (reason) => {
          await writer.abort();
          tx = undefined;
          log.info({ ...base(s), queueId: writer.id, reason }, 'message aborted');
        },
        end: async (body: BodyFacts) => {
          const done = (r: SmtpReply): SmtpReply => {
            tx = undefined;
            return r;
          };
          if (failed) {
            await writer.abort();
            log.error({ ...base(s), queueId: writer.id, err: failed }, 'spool write failed; deferring');
            return done(Replies.storageFull);
          }
          const headBuf = Buffer.concat(head);
          const headerComplete = headerBlockEnd(headBuf) !== undefined || headBytes < HEAD_LIMIT;
          const message: MessageFacts = { size: body.size, headers: parseHeaderFields(headBuf), headerComplete, raw: () => writer.readBack() };
          const out = await stage('data', (h, ctx) => h.data?.(ctx, message));
          const refused = refuse(s, 'data', out, { queueId: writer.id, from: draft.mailFrom });
          if (refused) {
            await writer.abort();
            return done(refused);
          }
          if (out.verdict.kind === 'discard') {
            await writer.abort();
            mailEvent(log, 'discarded', { ...base(s), queueId: writer.id, stage: 'data', check: out.check, reason: out.verdict.reason });
            return done(reply(250, '2.0.0', 'Ok'));
          }
          for (const tag of out.tags) t.tags.add(tag);
          const c = deps.content;
          const decision = decideContent(c, [connectScore, heloScore, t.mailScore, t.rcptScore ?? NO_SCORE, scoreOf(out)], t.tags);
          const held = forwardsKeptBack({ policy: deps.forwardJunk ?? 'not-forwarded', login: facts.login, contentClass: decision.class, tags: t.tags, routes: draft.recipients, relayReasons: t.relayReasons });
          if (held) {
            const detail = { ...base(s), queueId: writer.id, from: draft.mailFrom, reason: held.reason, forwards: held.dropped.map((r) => `${r.address}->${r.mailbox}`) };
            if (held.keep.length === 0) {
              await writer.abort();
              const r = perm('5.7.1', 'Message refused for forwarding');
              mailEvent(log, 'rejected', { ...detail, stage: 'data', check: 'forwarding.junk', reply: replyText(r) });
              return done(r);
            }
            log.info({ event: 'forward-withheld', ...detail }, `outside copies of ${held.reason} mail not forwarded (forwarding.junk)`);
          }
          try {
            // Our verdict and the fields from checks go above our Received header, as milters
            // put theirs, after the sender's look-alikes are gone.
            const added = [...decision.fields, ...out.headers, ...t.headers];
            const mark = decision.class === 'spam' || decision.class === 'kill';
            // Without a content policy the head is read again only when it may hold results in our name.
            const results = message.headers.some(([name]) => name.toLowerCase() === 'authentication-results');
            if (c || results) {
              await writer.rewriteHead(editHead({ hostname: deps.hostname, stripSpam: c !== undefined, add: added, ...(mark && c ? { subjectPrefix: c.subjectPrefix } : {}) }));
            } else if (added.length > 0) {
              await writer.prepend(Buffer.from(added.map((h) => `${h}\r\n`).join(''), 'utf8'));
            }
            await writer.commit({
              ...(held ? { recipients: held.keep } : {}),
              ...(decision.noBounce ? { noBounce: decision.noBounce } : {}),
              ...(decision.senderVerified ? { senderVerified: true } : {}),
              ...(decision.folder ? { folder: decision.folder } : {}),
              ...(decision.quarantine ? { area: 'quarantine' as const } : {}),
            });
          } catch (err) {
            await writer.abort();
            log.error({ ...base(s), queueId: writer.id, err: String(err) }, 'spool commit failed; deferring');
            return done(Replies.storageFull);
          }
          // Kill-level mail is kept, not delivered; the sender hears the same 250 as for any
          // message, and no bounce ever goes to it.
          mailEvent(log, decision.quarantine ? 'quarantined' : 'queued', {
            ...base(s),
            queueId: writer.id,
            from: draft.mailFrom,
            to: t.accepted.map((m) => m.address),
            size: body.size,
            ...(draft.relayReason ? { relay: draft.relayReason } : {}),
            ...(decision.score !== 0 ? { score: decision.score, rules: decision.rules } : {}),
            ...(decision.class && decision.class !== 'ham' ? { spam: decision.class } : {}),
            ...(decision.noBounce ? { noBounce: decision.noBounce } : {}),
          });
          if (!decision.quarantine) deps.spool.enqueued(writer.id);
          return done(reply(250, '2.0.0', `Ok: queued as ${writer.id}`));
        },
      };
    },

    onReset() {
      tx = undefined;
    },

    onClose(s, reason) {
      // A plain Error as the reason: abort() without one builds a DOMException per connection.
      closed.abort(CLIENT_GONE);
      mailEvent(log, 'disconnect', { ...base(s), reason });
    },

    onEvent(s, event, detail) {
      mailEvent(log, 'protocol', { ...base(s), kind: event, ...detail });
    },
  };

  function discardingSink(s: SessionState, t: Transaction): MessageSink {
    return {
      write: () => undefined,
      abort: () => {
        tx = undefined;
      },
      end: async () => {
        mailEvent(log, 'discarded', { ...base(s), stage: 'data', from: t.from?.address ?? '', to: t.accepted.map((m) => m.address), reason: t.discardReason ?? 'every recipient was discarded' });
        tx = undefined;
        return reply(250, '2.0.0', 'Ok');
      },
    };
  }
}

/** Where a recipient goes: local mailboxes (through aliases), forwarded or foreign addresses. */
function route(to: Mailbox, localDomain: boolean, resolve: () => RecipientResolution): RoutedRecipient[] {
  if (!localDomain) return [{ address: to.address, mailbox: to.address, transport: 'remote' }];
  const r = resolve();
  if (r.kind !== 'local') return [];
  return [
    ...r.mailboxes.map((m) => ({ address: to.address, mailbox: m, transport: 'local' as const })),
    ...r.external.map((m) => ({ address: to.address, mailbox: m, transport: 'remote' as const })),
  ];
}
