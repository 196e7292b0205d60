// What the import says about each thing it read: what it became in Mailward, what could not be
// translated (with the line it came from and what to do), and the errors — above all the trap of
// the incident, which is named and never copied. Printed by --dry-run and after a real import.
export type ItemLevel = 'error' | 'warning' | 'mapped' | 'info';

export interface ReportItem {
  readonly level: ItemLevel;
  /** Stable id for scripts and tests, e.g. "mynetworks-loopback". */
  readonly id: string;
  /** Where it came from: "main.cf:31", "master.cf:17 (-o)", "virtual:4", "default". */
  readonly source: string;
  /** What Postfix said: "permit_mynetworks", "mynetworks = 127.0.0.0/8". */
  readonly postfix: string;
  /** What it became in Mailward ("relay.trustedNetworks", "checks.dnsbl.zones"), or why nothing. */
  readonly mailward: string;
  /** Errors and untranslated items: what to do. */
  readonly fix?: string;
}

export class Report {
  readonly items: ReportItem[] = [];

  add(item: ReportItem): void {
    this.items.push(item);
  }
  mapped(source: string, postfix: string, mailward: string): void {
    this.add({ level: 'mapped', id: 'mapped', source, postfix, mailward });
  }
  untranslated(id: string, source: string, postfix: string, mailward: string, fix: string): void {
    this.add({ level: 'warning', id, source, postfix, mailward, fix });
  }
  error(id: string, source: string, postfix: string, mailward: string, fix: string): void {
    this.add({ level: 'error', id, source, postfix, mailward, fix });
  }
  info(id: string, source: string, postfix: string, mailward: string): void {
    this.add({ level: 'info', id, source, postfix, mailward });
  }
  has(id: string): boolean {
    return this.items.some((i) => i.id === id);
  }
  count(level: ItemLevel): number {
    return this.items.filter((i) => i.level === level).length;
  }
}

const HEADINGS: Record<ItemLevel, string> = {
  error: 'ERRORS (unsafe in the Postfix config; not copied)',
  warning: 'NOT TRANSLATED (do these by hand)',
  mapped: 'TRANSLATED',
  info: 'NOTES',
};

export function formatReport(r: Report, doctor: readonly string[]): string {
  const out: string[] = [];
  for (const level of ['error', 'warning', 'mapped', 'info'] as const) {
    const items = r.items.filter((i) => i.level === level);
    if (items.length === 0) continue;
    out.push(`${HEADINGS[level]}:`);
    for (const i of items) {
      const tag = level === 'error' || level === 'warning' ? ` [${i.id}]` : '';
      out.push(`  ${i.source}: ${i.postfix}${tag}`);
      out.push(`      -> ${i.mailward}`);
      if (i.fix) out.push(`      fix: ${i.fix}`);
    }
    out.push('');
  }
  if (doctor.length > 0) {
    out.push('MAILWARD DOCTOR ON THE RESULT:');
    for (const d of doctor) out.push(`  ${d}`);
    out.push('');
  }
  out.push(`${r.count('error')} error(s), ${r.count('warning')} untranslated, ${r.count('mapped')} translated`);
  return `${out.join('\n')}\n`;
}
