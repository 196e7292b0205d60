// DKIM (RFC 6376) and DMARC (RFC 7489) verification at end of DATA, through mailauth with our
// resolver, recorded in an Authentication-Results header (RFC 8601) with our host name as the
// authserv-id. DMARC p=reject / p=quarantine act only when the operator sets `enforce`.
import type { ARCData, ARCResult, DKIMVerifyResult, DMARCResult, SPFResult } from 'mailauth';
import { z } from 'zod';
import { Replies, perm } from '../core/reply.ts';
import { defer, pass, reject, score, tagged, type Verdict } from '../core/verdict.ts';
import { defineCheck, type CheckContext, type MessageFacts } from '../pipeline/check.ts';
import { mailauthResolver } from './lib/dns.ts';
import { headerField } from './lib/header.ts';
import { headerBlockEnd } from '../core/header-block.ts';
import { evaluateSpf, loadMailauth, spfIdentity } from './lib/spf-eval.ts';
import { publishedPolicy, recordEvaluation, type Disposition } from './lib/dmarc-record.ts';

const NAME = 'dkim-dmarc';

const Options = z
  .object({
    /** Act on the sender's DMARC policy: p=reject → 550 5.7.1, p=quarantine → add `quarantinePoints`. */
    enforce: z.boolean().default(false),
    quarantinePoints: z.number().finite().default(5),
    /** DKIM keys shorter than this fail (RFC 8301 §3.2 asks for at least 1024 bits). */
    minKeyBits: z.number().int().min(512).default(1024),
    /** Verify ARC chains (RFC 8617) and report them in the header. */
    arc: z.boolean().default(true),
    /** Leave mail from logged-in users alone (it is ours, on its way out). */
    skipLogins: z.boolean().default(true),
  })
  .strict();

const rejected = (domain: string) => perm('5.7.1', `Message rejected per DMARC policy of ${domain}`);

// Fields that make mailauth read the body: a DKIM signature's body hash, ARC's seals.
const SIGNATURE_FIELD = /(?:^|\n)(?:dkim-signature|arc-seal|arc-message-signature|arc-authentication-results)[ \t]*:/i;

/**
 * The header block alone (with its closing empty line) when the message carries no signature: the
 * results are then the same (dkim=none, From as it is) and mailauth need not stream the body, which
 * was most of its time for unsigned mail — the common case. Undefined when the whole message is needed.
 */
function unsignedHead(raw: Buffer): Buffer | undefined {
  const end = headerBlockEnd(raw);
  if (end === undefined) return undefined;
  return SIGNATURE_FIELD.test(raw.toString('latin1', 0, end)) ? undefined : raw.subarray(0, end);
}

/** `domain` is `signer` or lies under it: a signature of example.com vouches for bounces@mail.example.com. */
const under = (domain: string, signer: string): boolean => {
  const d = domain.toLowerCase();
  const s = signer.toLowerCase().replace(/\.$/, '');
  // A signer of one label (a TLD) vouches for nobody's subdomains.
  return d === s || (s.includes('.') && d.endsWith(`.${s}`));
};

/**
 * The envelope sender's domain vouched for the message: SPF passed for that very domain (not for
 * postmaster@HELO), or a valid DKIM signature was made by it or a parent domain. A notice to such
 * a sender reaches the real sender, so forwarded mail may bounce to it.
 */
function senderVerified(r: Results, mailFromDomain: string | undefined): boolean {
  if (mailFromDomain === undefined) return false;
  if (r.spf?.status.result === 'pass' && r.spf.domain.toLowerCase() === mailFromDomain.toLowerCase()) return true;
  return r.dkim.results.some((d) => d.status.result === 'pass' && under(mailFromDomain, d.signingDomain));
}

interface Results {
  readonly dkim: DKIMVerifyResult;
  readonly spf: SPFResult | undefined;
  readonly arc: ARCResult | undefined;
  readonly dmarc: DMARCResult | false;
}

export const dkimDmarc = defineCheck({
  name: NAME,
  stages: ['data'],
  options: Options,
  create: (opts, env) => {
    const verify = async (ctx: CheckContext, raw: Buffer): Promise<Results> => {
      const resolver = mailauthResolver(env.dns, ctx.signal);
      const s = ctx.session;
      const from = ctx.tx?.mailFrom ?? null;
      // DMARC's SPF half (RFC 7489 §4.2) needs the SMTP facts, not the headers: the result the
      // spf check got for this transaction at MAIL/RCPT, or one evaluation here when it did not run.
      const id = spfIdentity(s, from);
      const spfPending = id !== undefined && id !== 'no-ip' ? evaluateSpf(env, s, id, ctx.signal) : undefined;
      spfPending?.catch(() => undefined);
      const { arc: arcVerify, dkimVerify, dmarc: dmarcVerify } = await loadMailauth();
      const dkim = await dkimVerify(unsignedHead(raw) ?? raw, {
        resolver,
        ...(from ? { sender: from.address } : {}),
        minBitLength: opts.minKeyBits,
        curTime: new Date(env.clock()),
      });
      const spf = await spfPending;
      const arcData = (dkim as { arc?: ARCData }).arc;
      const arc = opts.arc && arcData ? await arcVerify(arcData, { resolver, minBitLength: opts.minKeyBits }) : undefined;
      // RFC 7489 §6.6.1: exactly one From address, or DMARC does not apply.
      const dmarc =
        dkim.headerFrom.length === 1
          ? await dmarcVerify({
              headerFrom: dkim.headerFrom,
              spfDomains: spf?.status.result === 'pass' ? [spf.domain] : [],
              dkimDomains: dkim.results
                .filter((r) => r.status.result === 'pass')
                .map((r) => ({ domain: r.signingDomain, aligned: r.status.aligned ?? false, underSized: r.status.underSized ?? false, ...(r.id ? { id: r.id } : {}) })),
              ...(arc ? { arcResult: arc } : {}),
              resolver,
            })
          : false;
      return { dkim, spf, arc, dmarc };
    };

    const authResults = (r: Results): string => {
      // RFC 8601 §2.2: authserv-id, then one resinfo per method.
      const parts = [env.hostname];
      if (r.dkim.results.length === 0) parts.push('dkim=none');
      for (const d of r.dkim.results) parts.push(d.info);
      if (r.spf) parts.push(r.spf.info);
      if (r.arc?.info) parts.push(r.arc.info);
      if (r.dmarc) parts.push(r.dmarc.info);
      return headerField('Authentication-Results', parts.join('; '));
    };

    // RFC 7489 §7.2: the facts of the aggregate report's row, counted when reports are sent
    // (config dmarcReports.send) and the sender's record asks for them (rua). A store outage costs
    // the count, never the message.
    const report = async (ctx: CheckContext, r: Results, disposition: Disposition): Promise<void> => {
      const dm = r.dmarc;
      const rep = env.dmarcReports;
      if (!rep || !dm || !dm.rr || (dm.status.result !== 'pass' && dm.status.result !== 'fail')) return;
      const policy = publishedPolicy(dm.domain, dm.rr);
      if (!policy) return;
      try {
        await recordEvaluation(
          env.store,
          policy,
          {
            sourceIp: ctx.session.clientAddress,
            headerFrom: ((dm.status.header as { d?: string } | undefined)?.d ?? dm.domain).toLowerCase(),
            envelopeFrom: ctx.tx?.mailFrom?.domain.toLowerCase() ?? '',
            disposition,
            dkimAligned: Boolean(dm.alignment.dkim.result),
            spfAligned: Boolean(dm.alignment.spf.result),
            dkim: r.dkim.results.filter((d) => d.signingDomain).map((d) => ({ domain: d.signingDomain, selector: d.selector ?? '', result: d.status.result })),
            ...(r.spf ? { spf: { domain: r.spf.domain, result: r.spf.status.result } } : {}),
          },
          { intervalMs: rep.intervalMs, now: env.clock() },
        );
      } catch (err) {
        env.log.warn({ check: NAME, event: 'dmarc-record-failed', domain: dm.domain, err: String(err) }, 'cannot count a DMARC evaluation for the aggregate report');
      }
    };

    return {
      data: async (ctx, message: MessageFacts): Promise<Verdict> => {
        if (opts.skipLogins && ctx.session.login !== undefined) return pass();
        let raw: Buffer;
        try {
          raw = await message.raw();
        } catch (err) {
          env.log.error({ check: NAME, err: err instanceof Error ? err.message : String(err) }, 'message not readable for DKIM/DMARC; deferring');
          return defer(Replies.tempFailure, `${NAME}: message not readable`);
        }
        const r = await verify(ctx, raw);
        const headers = [authResults(r)];
        const verified = senderVerified(r, ctx.tx?.mailFrom?.domain);
        const ok = (v: Verdict): Verdict => (verified ? tagged(v, 'sender-verified') : v);
        const dm = r.dmarc;
        if (!dm || dm.status.result !== 'fail') {
          await report(ctx, r, 'none');
          return ok(pass(headers));
        }
        let policy = dm.policy;
        // RFC 7489 §6.6.4: with pct below 100, the rest of the failing mail gets the next milder policy.
        if (typeof dm.pct === 'number' && dm.pct < 100 && Math.random() * 100 >= dm.pct) {
          policy = policy === 'reject' ? 'quarantine' : 'none';
        }
        const domain = (dm.status.header as { from?: string } | undefined)?.from ?? dm.domain;
        const why = `DMARC fail for ${domain} (p=${policy}): ${dm.info}`;
        // The policy applied (RFC 7489 appendix C, PolicyEvaluatedType's disposition).
        await report(ctx, r, opts.enforce && (policy === 'reject' || policy === 'quarantine') ? policy : 'none');
        // Whatever the policy, the From domain failed: the sender is likely forged, so no bounce.
        if (!opts.enforce) {
          if (policy !== 'none') env.log.info({ check: NAME, domain, policy }, 'DMARC failed; not enforced (checks.dkim-dmarc.enforce is off)');
          return ok(policy === 'none' ? tagged(pass(headers), 'auth-failed') : tagged(pass(headers), 'auth-failed', 'dmarc-failed'));
        }
        if (policy === 'reject') return reject(rejected(domain), why);
        if (policy === 'quarantine') return ok(tagged(score(opts.quarantinePoints, `${NAME}:quarantine`, headers), 'auth-failed', 'dmarc-failed'));
        return ok(tagged(pass(headers), 'auth-failed'));
      },
    };
  },
});
