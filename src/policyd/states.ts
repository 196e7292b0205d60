// Maps Postfix's protocol states onto Mailward's check stages. A check placed in a state's list
// runs the handler of the first of that state's stages it has: at RCPT a check with only a MAIL
// handler (sender-login) runs that, as in Postfix where every check may sit in the RCPT list.
import type { PolicyList, ProtocolState } from '../config/policyd-schema.ts';
import type { Stage } from '../config/schema.ts';

/** The config list serving each protocol state (EHLO shares HELO's). */
export const LIST_OF: Readonly<Record<ProtocolState, PolicyList>> = {
  CONNECT: 'CONNECT',
  EHLO: 'HELO',
  HELO: 'HELO',
  MAIL: 'MAIL',
  RCPT: 'RCPT',
  DATA: 'DATA',
  'END-OF-MESSAGE': 'END-OF-MESSAGE',
  VRFY: 'VRFY',
  ETRN: 'ETRN',
};

/** Stages a list may use, most specific first. DATA is Postfix's DATA command, before any content
 *  (so Mailward's mail stage); END-OF-MESSAGE is Mailward's data stage, given the size only. */
export const STAGES_OF: Readonly<Record<PolicyList, readonly Stage[]>> = {
  CONNECT: ['connect'],
  HELO: ['helo', 'connect'],
  MAIL: ['mail', 'helo', 'connect'],
  RCPT: ['rcpt', 'mail', 'helo', 'connect'],
  DATA: ['mail', 'helo', 'connect'],
  'END-OF-MESSAGE': ['data', 'mail', 'helo', 'connect'],
  // VRFY names a recipient but there is no sender.
  VRFY: ['rcpt', 'helo', 'connect'],
  ETRN: ['helo', 'connect'],
};

/** Checks that judge the message content. Postfix sends a policy service no content (a milter
 *  gets it), so at END-OF-MESSAGE they could only fail; they are refused at load. */
export const CONTENT_CHECKS: ReadonlySet<string> = new Set(['dkim-dmarc', 'spam', 'uribl']);

/** The stage a check runs at in a list, or undefined when it has none of the list's stages. */
export function stageFor(list: PolicyList, checkStages: readonly Stage[]): Stage | undefined {
  return STAGES_OF[list].find((s) => checkStages.includes(s));
}
