// Validation of MAIL FROM parameters against what this session offered: SIZE (RFC 1870),
// BODY (RFC 6152, RFC 3030 BINARYMIME), SMTPUTF8 (RFC 6531) and AUTH (RFC 4954 §5).
import type { SmtpReply } from '../../core/reply.ts';
import { R } from './replies.ts';
import type { MailFromInfo, SmtpParams } from './types.ts';

export interface Offered {
  readonly smtputf8: boolean;
  readonly chunking: boolean;
  readonly auth: boolean;
}

export type MailParamsResult =
  | { readonly ok: true; readonly body: MailFromInfo['body']; readonly smtputf8: boolean; readonly declaredSize: number | undefined }
  /** `bad` marks a syntax/protocol error that counts towards maxBadCommands. */
  | { readonly ok: false; readonly reply: SmtpReply; readonly bad: boolean };

const fail = (reply: SmtpReply): MailParamsResult => ({ ok: false, reply, bad: true });

export function checkMailParams(params: SmtpParams, offered: Offered): MailParamsResult {
  let body: MailFromInfo['body'] = '7BIT';
  let smtputf8 = false;
  let declaredSize: number | undefined;
  for (const [key, value] of params) {
    switch (key) {
      case 'SIZE': // RFC 1870 §6: SIZE=<decimal>
        if (typeof value !== 'string' || !/^[0-9]{1,20}$/.test(value)) return fail(R.badSize);
        declaredSize = Number(value);
        break;
      case 'BODY': {
        const v = typeof value === 'string' ? value.toUpperCase() : '';
        if (v === '7BIT' || v === '8BITMIME') body = v;
        // RFC 3030 §3: BINARYMIME only together with CHUNKING.
        else if (v === 'BINARYMIME' && offered.chunking) body = v;
        else return fail(R.badBody);
        break;
      }
      case 'SMTPUTF8': // RFC 6531 §3.4: no value
        if (!offered.smtputf8) return fail(R.unsupportedParam);
        if (value !== true) return fail(R.syntax('Syntax: SMTPUTF8 takes no value'));
        smtputf8 = true;
        break;
      case 'AUTH': // RFC 4954 §5: accepted (and passed on) when AUTH is offered.
        if (!offered.auth) return fail(R.unsupportedParam);
        break;
      default:
        // DSN (RET, ENVID) and anything else we did not advertise.
        return fail(R.unsupportedParam);
    }
  }
  return { ok: true, body, smtputf8, declaredSize };
}
