// log.format "postfix": one human line per log event in the shape Postfix admins grep,
//   2026-12-07T10:00:00.000Z mx.example.org mailward[123]: 4F2A…: to=<bob@example.org>, orig_to=<info@example.org>, relay=local, delay=1.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)
// for deliveries, and "event: message key=value …" for the others. The JSON line pino makes is
// the input, so acceptor processes' lines (forwarded as JSON) come out the same way.

const STATUS: Record<string, string> = { delivered: 'sent', deferred: 'deferred', bounced: 'bounced' };
// Fields a one-liner shows, in this order, after the message.
const SHOWN = ['client', 'listener', 'login', 'helo', 'from', 'to', 'stage', 'check', 'reason', 'reply', 'relay', 'transport', 'setting', 'err'];

const text = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
const dsnOf = (reply: string): string | undefined => /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b/.exec(reply)?.[1];

export function formatPostfixLine(o: Record<string, unknown>): string {
  const time = typeof o.time === 'number' ? new Date(o.time).toISOString() : new Date().toISOString();
  const head = `${time} ${typeof o.hostname === 'string' ? `${o.hostname} ` : ''}mailward[${text(o.pid ?? process.pid)}]: `;
  const event = typeof o.event === 'string' ? o.event : undefined;
  const queueId = typeof o.queueId === 'string' ? `${o.queueId}: ` : '';
  const status = event ? STATUS[event] : undefined;
  if (status && o.to !== undefined) {
    const reply = typeof o.reply === 'string' ? o.reply : '';
    const mailbox = typeof o.mailbox === 'string' && o.mailbox !== o.to ? o.mailbox : undefined;
    const parts = [`to=<${mailbox ?? text(o.to)}>`];
    if (mailbox) parts.push(`orig_to=<${text(o.to)}>`);
    parts.push(`relay=${text(o.relay ?? o.transport ?? 'none')}`);
    if (typeof o.delayMs === 'number') parts.push(`delay=${(o.delayMs / 1000).toFixed(1)}`);
    const dsn = typeof o.dsn === 'string' ? o.dsn : dsnOf(reply);
    if (dsn) parts.push(`dsn=${dsn}`);
    parts.push(`status=${status} (${reply})`);
    return `${head}${queueId}${parts.join(', ')}`;
  }
  const fields = SHOWN.filter((k) => o[k] !== undefined).map((k) => `${k}=${k === 'from' || k === 'to' ? `<${text(o[k])}>` : text(o[k])}`);
  const msg = typeof o.msg === 'string' ? o.msg : '';
  const what = event && event !== msg ? `${event}: ${msg}` : msg || (event ?? '');
  const level = typeof o.level === 'number' && o.level >= 40 ? (o.level >= 50 ? 'error: ' : 'warning: ') : '';
  return `${head}${queueId}${level}${what}${fields.length ? ` ${fields.join(', ')}` : ''}`;
}

/** A pino destination that turns each JSON line into a postfix-style line on `out`. */
export function postfixDestination(out: { write(s: string): unknown; flush?(cb?: () => void): void }): { write(s: string): void; flush(cb?: () => void): void } {
  return {
    write(chunk: string): void {
      let lines = '';
      for (const line of chunk.split('\n')) {
        if (line === '') continue;
        try {
          lines += `${formatPostfixLine(JSON.parse(line) as Record<string, unknown>)}\n`;
        } catch {
          lines += `${line}\n`;
        }
      }
      out.write(lines);
    },
    flush(cb?: () => void): void {
      if (out.flush) out.flush(cb);
      else cb?.();
    },
  };
}
