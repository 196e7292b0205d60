// The parts the two aggregate report mails share (DMARC, RFC 7489 §7.2.1.1; TLS-RPT, RFC 8460 §5.3):
// both name the report in the subject the same way and attach one gzip'd file in base64.

/** The report mail's first headers: From, To, the "Report Domain: … Submitter: … Report-ID: <…>" subject, Date, Message-ID. */
export function reportHeaders(o: { from: string; to: string; domain: string; submitter: string; reportId: string; date: Date }): string[] {
  return [
    `From: <${o.from}>`,
    `To: <${o.to}>`,
    `Subject: Report Domain: ${o.domain} Submitter: ${o.submitter} Report-ID: <${o.reportId}>`,
    `Date: ${o.date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${o.reportId}>`,
  ];
}

/** `data` in base64, 76 characters a line (RFC 2045 §6.8), each line ended by CRLF. */
export function base64Lines(data: Buffer): string {
  return data.toString('base64').replace(/.{1,76}/g, (l) => `${l}\r\n`);
}
