// The virus check at end of DATA: streams the message to ClamAV's clamd (lib/clamd.ts) and
// rejects what it finds infected. When clamd cannot answer, the operator chooses: defer (4xx, the
// default — in doubt, the sender retries later) or pass the message on unscanned.
import { z } from 'zod';
import { Duration, Size } from '../config/units.ts';
import { Replies, perm } from '../core/reply.ts';
import { defer, pass, reject, type Verdict } from '../core/verdict.ts';
import { defineCheck } from '../pipeline/check.ts';
import { CLAMD_ADDRESS_FORMS, parseClamdAddress, scanStream, type ClamdAddress } from './lib/clamd.ts';

const NAME = 'virus';

/** Debian's clamav-daemon listens here (LocalSocket in /etc/clamav/clamd.conf). */
export const DEFAULT_CLAMD = 'unix:/var/run/clamav/clamd.ctl';

export const VirusOptions = z
  .object({
    /** Where clamd listens: tcp:HOST:PORT or unix:/path. */
    clamd: z
      .string()
      .superRefine((v, ctx) => {
        if (!parseClamdAddress(v)) ctx.addIssue({ code: 'custom', message: `not a clamd address; write ${CLAMD_ADDRESS_FORMS}`, input: v });
      })
      .default(DEFAULT_CLAMD),
    /**
     * Deadline of one scan (connect, stream, answer). The check's placement deadline
     * (checkTimeout, 10s by default) also applies and ends in a defer whatever onError says:
     * place the check as `{ check: virus, timeout: 40s }` to give clamd its full time.
     */
    timeout: Duration.pipe(z.number().int().min(100)).default(30_000),
    /** When clamd is down, silent or answers an error: defer (4xx) or pass the message unscanned. */
    onError: z.enum(['defer', 'pass']).default('defer'),
    /**
     * Bytes of each message streamed to clamd; the rest is not scanned. Keep it at or below
     * clamd's StreamMaxLength (Debian: 25M): past that, clamd answers "INSTREAM size limit
     * exceeded" and the message is treated as onError says.
     */
    maxBytes: Size.pipe(z.number().int().min(1024)).default(25 * 1024 * 1024),
    /** The reply text after `554 5.7.1`. The signature name goes to the log only. */
    rejectReply: z
      .string()
      .regex(/^[\x20-\x7e]{1,200}$/, 'one line of printable ASCII, at most 200 characters')
      .default('Message rejected: virus found'),
  })
  .strict();

export type VirusCheckOptions = z.output<typeof VirusOptions>;

// Signature names come from clamd's databases; keep them one printable line in the log.
const safeName = (name: string): string => name.replace(/[^\x21-\x7e]/g, '?').slice(0, 200);

export const virus = defineCheck({
  name: NAME,
  stages: ['data'],
  options: VirusOptions,
  create: (opts, env) => {
    const address: ClamdAddress = parseClamdAddress(opts.clamd)!;
    // RFC 5321 §4.2.2 (554: transaction failed) with RFC 3463 §3.8 X.7.1 (message refused by
    // policy), as Postfix and Amavis answer an infected message; permanent, so no retries.
    const infected = perm('5.7.1', opts.rejectReply, 554);
    return {
      data: async (ctx, message): Promise<Verdict> => {
        let raw: Buffer;
        try {
          raw = await message.raw();
        } catch (err) {
          env.log.error({ check: NAME, session: ctx.session.id, err: err instanceof Error ? err.message : String(err) }, 'message not readable for the virus scan; deferring');
          return defer(Replies.tempFailure, `${NAME}: message not readable`);
        }
        // Streamed up to maxBytes; clamd's own StreamMaxLength is the server's business.
        const scanned = raw.length > opts.maxBytes ? raw.subarray(0, opts.maxBytes) : raw;
        if (scanned.length < raw.length) env.log.info({ check: NAME, session: ctx.session.id, size: raw.length, scanned: scanned.length }, 'message larger than checks.virus.maxBytes; only its start is scanned');
        const r = await scanStream(address, [scanned], { timeoutMs: opts.timeout, signal: ctx.signal });
        if (r.kind === 'clean') return pass();
        if (r.kind === 'infected') return reject(infected, `${NAME}: ${safeName(r.name)} found by clamd`);
        // clamd down, silent, or answering an error — including "INSTREAM size limit exceeded"
        // when the message passes clamd's StreamMaxLength: the same doubt, the same choice.
        if (opts.onError === 'pass') {
          env.log.warn({ check: NAME, session: ctx.session.id, clamd: opts.clamd, err: r.message }, 'virus scan failed; message passed unscanned (checks.virus.onError is pass)');
          return pass();
        }
        env.log.warn({ check: NAME, session: ctx.session.id, clamd: opts.clamd, err: r.message }, 'virus scan failed; deferring (checks.virus.onError is defer)');
        return defer(Replies.tempFailure, `${NAME}: scan failed: ${r.message}`);
      },
    };
  },
});
