// Builds the Received: trace header we prepend to every accepted message (RFC 5321 §4.4,
// with the protocol keywords of RFC 3848 and RFC 6531 §3.7.3). It names the real client address
// (after a trusted PROXY header) and the queue id, never the login.

export interface ReceivedFacts {
  readonly helo?: string;
  readonly clientAddress: string;
  readonly hostname: string;
  readonly queueId: string;
  readonly esmtp: boolean;
  readonly tls: boolean;
  readonly authenticated: boolean;
  readonly smtputf8: boolean;
  readonly tlsProtocol?: string;
  readonly tlsCipher?: string;
  /** Named when the message has exactly one recipient (RFC 5321 §4.4 "for" clause). */
  readonly singleRecipient?: string;
  readonly date: Date;
}

export function protocolKeyword(f: Pick<ReceivedFacts, 'esmtp' | 'tls' | 'authenticated' | 'smtputf8'>): string {
  if (!f.esmtp) return 'SMTP';
  const base = f.smtputf8 ? 'UTF8SMTP' : 'ESMTP';
  return `${base}${f.tls ? 'S' : ''}${f.authenticated ? 'A' : ''}`;
}

/** RFC 5322 §3.3 date-time, e.g. "Fri, 27 Nov 2026 23:17:32 +0000". */
export function rfc5322Date(d: Date): string {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number): string => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const abs = Math.abs(off);
  return `${days[d.getDay()]}, ${p(d.getDate())} ${months[d.getMonth()]} ${d.getFullYear()} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${sign}${p(Math.floor(abs / 60))}${p(abs % 60)}`;
}

// A HELO name is client-controlled text: keep it printable and short so it cannot fold or inject.
const cleanHelo = (h: string | undefined): string => (h ?? 'unknown').replace(/[^\x21-\x7e]/g, '?').slice(0, 255);

export function receivedHeader(f: ReceivedFacts): string {
  // A local submission has no address: its provenance (local:uid=33(www-data)) is named instead.
  const from = f.clientAddress.startsWith('local:') ? `local (${f.clientAddress.slice(6)})` : `${cleanHelo(f.helo)} ([${f.clientAddress.includes(':') ? `IPv6:${f.clientAddress}` : f.clientAddress}])`;
  let h = `Received: from ${from}\r\n\tby ${f.hostname} (Mailward) with ${protocolKeyword(f)} id ${f.queueId}`;
  if (f.tls && f.tlsProtocol) h += `\r\n\t(using ${f.tlsProtocol}${f.tlsCipher ? ` with cipher ${f.tlsCipher}` : ''})`;
  if (f.singleRecipient) h += `\r\n\tfor <${f.singleRecipient}>`;
  return `${h}; ${rfc5322Date(f.date)}\r\n`;
}
