// The address of an LMTP server in the notation Postfix admins know (`lmtp:unix:/path`,
// `lmtp:inet:host:port`), parsed once when the config is read.

/** Where the LMTP server listens. */
export type LmtpAddress = { readonly kind: 'unix'; readonly path: string } | { readonly kind: 'inet'; readonly host: string; readonly port: number };

/**
 * "unix:/run/dovecot/lmtp", "inet:127.0.0.1:24" or "inet:[::1]:24" (Postfix's notation for
 * `virtual_transport = lmtp:unix:...`). Undefined when it is neither.
 */
export function parseLmtpAddress(text: string): LmtpAddress | undefined {
  if (text.startsWith('unix:')) {
    const p = text.slice('unix:'.length);
    return p.startsWith('/') ? { kind: 'unix', path: p } : undefined;
  }
  const m = /^inet:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { kind: 'inet', host: (m[1] ?? m[2])!, port };
}

export const lmtpAddressText = (a: LmtpAddress): string => (a.kind === 'unix' ? `unix:${a.path}` : `inet:${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`);
