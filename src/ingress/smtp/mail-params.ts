// Validation of MAIL FROM parameters against what this session offered: SIZE (RFC 1870),
// BODY (RFC 6152, RFC 3030 BINARYMIME), SMTPUTF8 (RFC 6531), AUTH (RFC 4954 §5) and REQUIRETLS
// (RFC 8689 §4.1).
import type { SmtpReply } from '../../core/reply.ts';
import { R } from './replies.ts';
import type { MailFromInfo, SmtpParams } from './types.ts';

export interface Offered {
  readonly smtputf8: boolean;
  readonly chunking: boolean;
  readonly auth: boolean;
  /** REQUIRETLS advertised in this (TLS-protected) session's EHLO reply. */
  readonly requireTls: boolean;
  /** The session runs over TLS (STARTTLS done, or implicit TLS). */
  readonly secure: boolean;
}

export type MailParamsResult =
  | { readonly ok: true; readonly body: MailFromInfo['body']; readonly smtputf8: boolean; readonly requireTls: boolean; readonly declaredSize: number | undefined }
  /** `bad` marks a syntax/protocol error that counts towards maxBadCommands. */
  | { readonly ok: false; readonly reply: SmtpReply; readonly bad: boolean };

const fail = (reply: SmtpReply): MailParamsResult => ({ ok: false, reply, bad: true });

export function checkMailParams(params: SmtpParams, offered: Offered): MailParamsResult {
  let body: MailFromInfo['body'] = '7BIT';
  let smtputf8 = false;
  let requireTls = false;
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
      case 'REQUIRETLS':
        // RFC 8689 §4.1: only over TLS; a session in clear gets 530 5.7.10 (not a syntax error).
        if (!offered.secure) return { ok: false, reply: R.requireTlsNeedsTls, bad: false };
        if (!offered.requireTls) return fail(R.unsupportedParam);
        if (value !== true) return fail(R.syntax('Syntax: REQUIRETLS takes no value'));
        requireTls = true;
        break;
      default:
        // DSN (RET, ENVID) and anything else we did not advertise.
        return fail(R.unsupportedParam);
    }
  }
  return { ok: true, body, smtputf8, requireTls, declaredSize };
}
