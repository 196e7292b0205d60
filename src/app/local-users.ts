// Maps a proven local uid to the login it submits as (sendmail.users, else
// name@sendmail.defaultDomain when set) and to its provenance text, local:uid=33(www-data).
import { etcEntry } from '../core/etc-files.ts';
import type { Config } from '../config/load.ts';
import type { LocalIdentity } from '../ingress/local-submit.ts';

/** sysexits(3): the local user is not allowed to submit. */
export const EX_NOUSER = 67;

/** The user name of `uid` from /etc/passwd (read at each call: users come and go), if any. */
export function userName(uid: number, passwd = '/etc/passwd'): string | undefined {
  return etcEntry(passwd, 2, String(uid), (f) => f[0] !== '')?.[0];
}

export function localIdentifier(config: Config['sendmail'], passwd?: string): (uid: number) => LocalIdentity {
  const users = new Map(Object.entries(config.users).map(([k, v]) => [k, v.toLowerCase()]));
  return (uid) => {
    const name = userName(uid, passwd);
    const provenance = `local:uid=${uid}${name ? `(${name})` : ''}`;
    const login = (name !== undefined ? users.get(name) : undefined) ?? users.get(String(uid)) ?? (config.defaultDomain && name ? `${name}@${config.defaultDomain}`.toLowerCase() : undefined);
    if (!login) return { ok: false, code: EX_NOUSER, reason: `local user ${name ?? uid} (uid ${uid}) may not submit mail: not in sendmail.users and no sendmail.defaultDomain` };
    return { ok: true, login, provenance };
  };
}
