// EXTORTION_WORDS: the story every sextortion mail tells, read after normalisation (so "hac ker"
// and "pаsswоrd" count): I got into your device, I recorded you, I will send it to your contacts,
// unless you pay. Each theme is a group of stems; the rule needs the intrusion, the recording or
// the shame, and the threat to tell others or the payment. A mail that mentions a hacked account or
// a video once does not hold three of the themes.
import type { Rule } from '../rules.ts';

const THEMES: Readonly<Record<string, RegExp>> = {
  intrusion: /\b(?:hack(?:ed|er|ers|ing)?|malware|spyware|trojan|virus|keylogger|rootkit|remote (?:access|control)|(?:gained|got|gotten|have|had) (?:full )?(?:access|control)|(?:installed|planted|put) (?:a |an |my )?(?:\w+ ){0,2}(?:software|program|code|malware|virus)|(?:access|control) (?:to|over) (?:your|all your) (?:device|devices|computer|phone|system|operating system|account|accounts|email|mailbox)|infected (?:your|the) (?:device|computer|system)|compromised)\b/i,
  recording: /\b(?:(?:web)?cam(?:era)?s?|record(?:ed|ing)|footage|video(?:s|tape)?|screenshots?|filmed|captured|clips?|screen (?:capture|recording))\b/i,
  shame: /\b(?:adult|porn\w*|xxx|masturbat\w*|intimate|sex(?:ual)?|nude|naked|embarrass\w*|humiliat\w*|dirty (?:secrets?|little secret)|satisf(?:y|ied|ying) yourself|pleasur\w*|explicit)\b/i,
  exposure: /\b(?:(?:all )?(?:your|ur) (?:contacts|friends|family|relatives|colleagues|coworkers|partner|wife|husband)|contact list|address book|social (?:networks?|media)|(?:send|forward|share) (?:it|them|this|the (?:video|recording|footage)) to (?:everyone|all|every)|spread|leak(?:ed)?|publish|go viral)\b/i,
  payment: /\b(?:bitcoin|btc|crypto(?:currency)?|wallet|ransom|pay(?:ment)?|transfer|send (?:me|to my))\b/i,
};

/** Which of the extortion themes a text holds. */
export function extortionThemes(text: string): string[] {
  const t = text.length > 64 * 1024 ? text.slice(0, 64 * 1024) : text;
  return Object.keys(THEMES).filter((k) => THEMES[k]!.test(t));
}

const cache = new WeakMap<object, boolean>();

/** Whether the text tells the story; `key` (the message's facts) remembers the answer for the
 * rules that ask again (EXTORTION_DEMAND). */
export function isExtortion(text: string, key?: object): boolean {
  const known = key && cache.get(key);
  if (known !== undefined) return known;
  const t = text.length > 64 * 1024 ? text.slice(0, 64 * 1024) : text;
  // The intrusion first: most mail has none, and the other themes need not be read then.
  let yes = false;
  if (THEMES.intrusion!.test(t) && (THEMES.recording!.test(t) || THEMES.shame!.test(t))) yes = extortionThemes(t).length >= 4 && (THEMES.exposure!.test(t) || THEMES.payment!.test(t));
  if (key) cache.set(key, yes);
  return yes;
}

export const EXTORTION_WORDS: Rule = {
  name: 'EXTORTION_WORDS',
  points: 2.0,
  description: 'The extortion story: an intrusion, a recording or shame, and a threat to tell others or a demand to pay',
  test: (_m, f) => isExtortion(f.text, f),
};
