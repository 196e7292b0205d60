// SMTP replies as data: a code, an RFC 3463 enhanced status code and short client-safe text.
// Detail for the operator goes to the log, never into the reply (ARCHITECTURE: two audiences).

export interface SmtpReply {
  /** Three-digit basic reply code (RFC 5321 §4.2). */
  readonly code: number;
  /** Enhanced status code (RFC 3463 / RFC 2034), e.g. "5.7.1"; omitted for 220/221 greetings etc. */
  readonly enhanced?: string;
  /** One line, or several for a multi-line reply. Must not contain CR or LF. */
  readonly text: string | readonly string[];
}

export function reply(code: number, enhanced: string | undefined, text: string | readonly string[]): SmtpReply {
  return enhanced === undefined ? { code, text } : { code, enhanced, text };
}

/** A permanent (5xx) reply; `code` defaults to 550. */
export function perm(enhanced: string, text: string, code = 550): SmtpReply {
  return { code, enhanced, text };
}

/** A temporary (4xx) reply; `code` defaults to 450. */
export function temp(enhanced: string, text: string, code = 450): SmtpReply {
  return { code, enhanced, text };
}

export const isPositive = (r: SmtpReply): boolean => r.code >= 200 && r.code < 400;
export const isTemporary = (r: SmtpReply): boolean => r.code >= 400 && r.code < 500;
export const isPermanent = (r: SmtpReply): boolean => r.code >= 500;

/** Serialises a reply into wire form: "250-first\r\n250 last\r\n" (RFC 5321 §4.2.1). */
export function formatReply(r: SmtpReply): string {
  // Most replies are one line of plain text: no array, no closure, no regex run on them.
  if (typeof r.text === 'string') {
    const text = r.text.includes('\r') || r.text.includes('\n') ? r.text.replace(/[\r\n]+/g, ' ') : r.text;
    return r.enhanced ? `${r.code} ${r.enhanced} ${text}\r\n` : `${r.code} ${text}\r\n`;
  }
  const lines = r.text.length > 0 ? r.text : [''];
  const prefix = r.enhanced ? `${r.enhanced} ` : '';
  let out = '';
  lines.forEach((line, i) => {
    const sep = i === lines.length - 1 ? ' ' : '-';
    // Never let a CR or LF from any source split a reply into two (reply injection).
    const clean = line.replace(/[\r\n]+/g, ' ');
    out += `${r.code}${sep}${i === 0 || r.enhanced ? prefix : ''}${clean}\r\n`;
  });
  return out;
}

/** The text of a reply as one string, for logs. */
export function replyText(r: SmtpReply): string {
  const t = typeof r.text === 'string' ? r.text : r.text.join(' / ');
  return `${r.code}${r.enhanced ? ' ' + r.enhanced : ''} ${t}`;
}

// Replies used in several places.
export const Replies = {
  ok: reply(250, '2.0.0', 'OK'),
  relayDenied: perm('5.7.1', 'Relay access denied', 554),
  unknownUser: perm('5.1.1', 'User unknown in local recipient table'),
  tempFailure: temp('4.3.0', 'Temporary failure, please try again later', 451),
  checkFailed: temp('4.7.1', 'Temporary policy failure, please try again later', 451),
  storageFull: temp('4.3.1', 'Insufficient system storage', 452),
} as const;
