// PAYMENT_DEMAND: an amount of money with its currency and a short deadline ("1 300 USD …
// within 48 hours"), the shape of every extortion and of much fake-invoice mail. A real invoice
// names an amount and a due date too, but in days or on a date, seldom in hours; the deadline
// here is hours, "one/two days", or "once you read/open this", within 600 characters of the amount,
// and a word of demand (pay, send, transfer …) within 200.
import type { Rule } from '../rules.ts';

// Amounts as spam writes them: "$1,300", "1 300 USD", "USD 950", "€ 800", "0.12 BTC", "1300$".
const AMOUNT = /(?:[$€£]\s?\d[\d ,.]{0,12}\d?|\b\d[\d ,.]{0,12}\s?(?:[$€£]|(?:usd|eur|euros?|dollars?|gbp|pounds|btc|bitcoins?|eth|xmr|usdt)\b)|\b(?:usd|eur|gbp|btc)\s?\d[\d ,.]{0,12})/gi;
const DEADLINE = /\b(?:(?:\d{1,2}|one|two|three|twenty[- ]?four|forty[- ]?eight|seventy[- ]?two)\s?(?:-\s?)?(?:hours?|hrs?|h)\b|(?:one|two|1|2)\s(?:days?|business days?)\b|once you (?:read|open|have read|have opened)|after (?:reading|opening) this|(?:by|before) (?:tomorrow|tonight|midnight))/i;

// The demand itself near the amount: a receipt says "we charged $42.90" and "ships within 24 hours".
const DEMAND = /\b(?:pay|paid|payment|send|transfer|wire|deposit|remit)\b/i;

export function paymentDemand(text: string): boolean {
  // Most mail names no deadline: then the amounts need not be looked for.
  if (!DEADLINE.test(text) || !DEMAND.test(text)) return false;
  for (const m of text.matchAll(AMOUNT)) {
    const at = m.index;
    const end = at + m[0].length;
    if (DEMAND.test(text.slice(Math.max(0, at - 200), end + 200)) && DEADLINE.test(text.slice(Math.max(0, at - 600), end + 600))) return true;
  }
  return false;
}

export const PAYMENT_DEMAND: Rule = {
  name: 'PAYMENT_DEMAND',
  // Modest alone: transactional mail ("charged $9.99 in 24 hours") has the same shape now and then.
  points: 1.0,
  description: 'An amount of money with a short deadline (hours, a day or two, "once you read this")',
  test: (_m, f) => paymentDemand(f.text),
};
