// A mailbox path template such as "/var/vmail/%d/%n/Maildir", in the notation of Dovecot's
// mail_location and Postfix's virtual_mailbox_maps: %u the whole address, %n its local part,
// %d its domain, %% a literal "%". Compiled once at config load; expanding is string joins.

export type TemplatePart = { readonly text: string } | { readonly key: 'u' | 'n' | 'd' };

export interface MaildirTemplate {
  readonly source: string;
  readonly parts: readonly TemplatePart[];
}

/** The compiled template, or why it cannot be one. */
export function parseMaildirTemplate(source: string): { template?: MaildirTemplate; error?: string } {
  const parts: TemplatePart[] = [];
  let text = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c !== '%') {
      text += c;
      continue;
    }
    const k = source[++i];
    if (k === '%') {
      text += '%';
      continue;
    }
    if (k !== 'u' && k !== 'n' && k !== 'd') return { error: `"%${k ?? ''}" is not a template variable (only %u, %n, %d and %%)` };
    if (text !== '') parts.push({ text });
    text = '';
    parts.push({ key: k });
  }
  if (text !== '') parts.push({ text });
  const keys = parts.flatMap((p) => ('key' in p ? [p.key] : []));
  // Without the local part every mailbox would share one Maildir.
  if (!keys.includes('u') && !keys.includes('n')) return { error: 'it names no mailbox (use %n or %u)' };
  // A variable must be a whole path segment: "%n.bak" could let one mailbox's path be another's.
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (!('key' in p)) continue;
    const before = parts[i - 1];
    const after = parts[i + 1];
    if ((before && 'text' in before && !before.text.endsWith('/')) || (after && 'text' in after && !after.text.startsWith('/')) || (after && 'key' in after)) {
      return { error: `%${p.key} must be a whole folder name, between "/" characters` };
    }
  }
  return { template: { source, parts } };
}

/** The path for one mailbox; `local` and `domain` must already be checked as safe folder names. */
export function expandMaildirTemplate(t: MaildirTemplate, local: string, domain: string): string {
  return t.parts.map((p) => ('text' in p ? p.text : p.key === 'n' ? local : p.key === 'd' ? domain : `${local}@${domain}`)).join('');
}

/** The fixed start of the path (up to the first variable): every expanded path stays under it. */
export function templatePrefix(t: MaildirTemplate): string {
  const first = t.parts[0];
  return first && 'text' in first ? first.text : '';
}
