// Header facts of mail sent straight from a spam tool to the victim, as the rules see them for a
// sender that did not log in (a stranger; a user of ours submitting mail is not judged on these).
import { header } from '../mime.ts';
import { addressOf } from '../tokenize.ts';
import type { Rule } from '../rules.ts';

export const FROM_EQ_TO: Rule = {
  name: 'FROM_EQ_TO',
  // "Sent from your own account" is the extortion's proof of access. A list that writes its own
  // address in From and To carries list fields and is left out.
  points: 1.0,
  description: 'From: the same address as To:, from a sender that did not log in (mail "from yourself")',
  test: (m, _f, ctx) => {
    if (ctx.authenticated) return false;
    if (header(m, 'list-id') !== undefined || header(m, 'list-unsubscribe') !== undefined || /^\s*(?:list|bulk)\b/i.test(header(m, 'precedence') ?? '')) return false;
    const from = addressOf(header(m, 'from'));
    const to = header(m, 'to');
    return from !== undefined && to !== undefined && !to.includes(',') && addressOf(to) === from;
  },
};

export const MISSING_DATE_AND_MID: Rule = {
  name: 'MISSING_DATE_AND_MID',
  // On top of MISSING_DATE and MISSING_MID: every mail program writes both (RFC 5322 §3.6,
  // §3.6.4); only a tool that writes neither lacks both, and a user's program submitting to us
  // may leave them to the server.
  points: 1.0,
  description: 'Neither Date: nor Message-ID:, from a sender that did not log in',
  test: (m, _f, ctx) => !ctx.authenticated && header(m, 'date') === undefined && header(m, 'message-id') === undefined,
};
