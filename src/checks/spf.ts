// SPF (RFC 7208) for mail from the world, through mailauth with our configured resolver: fail,
// softfail and permerror each reject, score or are ignored as configured; a temporary DNS error
// defers. Adds a Received-SPF header (§9.1). Never applied to a client that logged in.
import type { SPFResult } from 'mailauth';
import { z } from 'zod';
import type { Mailbox } from '../core/address.ts';
import { perm, temp } from '../core/reply.ts';
import { PASS, defer, pass, reject, score, tagged, type Verdict } from '../core/verdict.ts';
import { defineCheck, type CheckContext } from '../pipeline/check.ts';
import { isNoAnswer, resolverWatch } from './lib/dns-outage.ts';
import { headerField } from './lib/header.ts';
import { evaluateSpf, spfIdentity } from './lib/spf-eval.ts';

const NAME = 'spf';

const Action = z.enum(['reject', 'score', 'ignore']);

const Options = z
  .object({
    /** `-all` matched: RFC 7208 §8.4 allows rejecting. */
    fail: Action.default('reject'),
    failPoints: z.number().finite().default(5),
    /** `~all`: §8.5 says do not reject on this alone. */
    softfail: Action.default('score'),
    softfailPoints: z.number().finite().default(2),
    /** A broken SPF record (§8.7): the sender's problem, so ignored unless asked. */
    permerror: Action.default('ignore'),
    permerrorPoints: z.number().finite().default(1),
    /** A DNS failure (§8.6): defer (451 4.4.3) so the sender retries, or let the mail through. */
    temperror: z.enum(['defer', 'ignore']).default('defer'),
    /** Add a Received-SPF header to accepted mail. */
    header: z.boolean().default(true),
  })
  .strict();

const failReply = perm('5.7.23', 'SPF validation failed'); // RFC 7372 §3.2
const permerrorReply = perm('5.7.24', 'SPF validation error'); // RFC 7372 §3.2
const temperrorReply = temp('4.4.3', 'Temporary DNS failure checking SPF, please try again later', 451);

// RFC 7208 §9.1: key-value values are dot-atoms or quoted strings.
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const kv = (value: string): string => (DOT_ATOM.test(value) ? value : `"${value.replace(/[\\"]/g, '\\$&')}"`);
const comment = (text: string): string => text.replace(/[\\()]/g, '\\$&');

type Result = SPFResult['status']['result'];

/** What mailauth's temperror comment says of the resolver: no answer at all, or an answer. */
function temperrorCause(comment: string, signal: AbortSignal): 'no-answer' | 'answer' | 'abandoned' {
  // mailauth words a resolver time-out "DNS timeout"; other errors keep node's message.
  if (/DNS timeout|ETIMEOUT|ECONNREFUSED/.test(comment)) return 'no-answer';
  if (/DNS query abandoned/.test(comment)) return isNoAnswer('ECANCELLED', signal) ? 'no-answer' : 'abandoned';
  return 'answer';
}

interface Evaluation {
  readonly result: Result;
  readonly comment: string;
}

export const spf = defineCheck({
  name: NAME,
  stages: ['mail', 'rcpt'],
  options: Options,
  create: (opts, env) => {
    const watch = resolverWatch(env.dns, env.log);
    const receivedSpf = (e: Evaluation, ip: string, sender: string, helo: string | undefined): string => {
      const pairs = [`client-ip=${ip}`, `envelope-from=${kv(sender)}`, ...(helo ? [`helo=${kv(helo)}`] : []), `receiver=${kv(env.hostname)}`, `identity=mailfrom`];
      return headerField('Received-SPF', `${e.result} (${comment(e.comment)}) ${pairs.join('; ')};`);
    };

    const check = async (ctx: CheckContext, from: Mailbox | null, first: boolean): Promise<Verdict> => {
      const s = ctx.session;
      if (s.login !== undefined) return PASS;
      const id = spfIdentity(s, from);
      if (id === 'no-ip') {
        env.log.warn({ check: NAME, client: s.clientAddress }, 'client address is not an IP address; SPF not checked');
        return PASS;
      }
      if (id === undefined) return PASS;
      const { ip, sender } = id;
      // One evaluation per transaction: RCPT after RCPT, and DMARC at DATA, reuse it.
      const generation = watch.generation;
      const r = await evaluateSpf(env, s, id, ctx.signal);
      const e: Evaluation = { result: r.status.result, comment: r.status.comment ?? '' };
      const domain = sender.slice(sender.lastIndexOf('@') + 1);
      const temporary = e.result === 'temperror' || e.result === 'temperr';
      const cause = temporary ? temperrorCause(e.comment, ctx.signal) : 'answer';
      if (cause === 'no-answer') watch.noAnswer(generation, { check: NAME, domain, err: e.comment });
      // A temperror that is an answer (SERVFAIL…) came from the server now; others may be cached.
      else if (cause === 'answer') watch.answered(temporary, domain);
      const headers = opts.header && first ? [receivedSpf(e, ip, sender, s.helo)] : undefined;
      const why = `spf=${e.result} for ${sender} from ${ip}: ${e.comment}`;
      const act = (action: z.output<typeof Action>, points: number, replyIfReject = failReply): Verdict => {
        if (action === 'reject') return reject(replyIfReject, why);
        if (action === 'score') return score(points, `${NAME}:${e.result}`, headers);
        return pass(headers);
      };
      switch (e.result) {
        // A failing sender is likely forged: no bounce may ever go to it.
        case 'fail':
          return tagged(act(opts.fail, opts.failPoints), 'auth-failed');
        case 'softfail':
          return tagged(act(opts.softfail, opts.softfailPoints), 'auth-failed');
        case 'permerror':
          return act(opts.permerror, opts.permerrorPoints, permerrorReply);
        case 'temperror':
        case 'temperr':
          if (opts.temperror === 'defer') {
            // Debug only: a resolver that stopped answering is logged once by its watch, not per message.
            env.log.debug({ check: NAME, sender, client: ip, comment: e.comment }, 'SPF lookup failed temporarily; deferring');
            return defer(temperrorReply, why);
          }
          return pass(headers);
        case 'pass':
          // The MAIL FROM domain itself vouched for this client (not postmaster@HELO for <>).
          return from !== null ? tagged(pass(headers), 'sender-verified') : pass(headers);
        default:
          // neutral, none: no opinion here (DMARC uses the result on its own).
          return pass(headers);
      }
    };

    return {
      mail: (ctx, from) => check(ctx, from, true),
      // At RCPT the header goes with the first recipient only, so a message carries one.
      rcpt: async (ctx) => (ctx.tx ? check(ctx, ctx.tx.mailFrom, ctx.tx.recipients.length === 0) : PASS),
    };
  },
});
