// The directory of local domains, mailboxes (with password hashes) and aliases, in one SQLite file
// that the server and the CLI open at the same time. No cache: every lookup is one prepared
// statement against the file, so a change made by the CLI counts at the server's next command.
import type Database from 'better-sqlite3';
import { isValidDomain, normaliseDomain } from '../core/address.ts';
import { hashPassword, verifyPassword, type HashPool } from '../core/password.ts';
import { addressKey, isAddressKey, subaddressBase, type AddressKey } from './address-key.ts';
import { expand, type Entry, type Lookup } from './resolve.ts';
import { openDatabase } from './schema.ts';

export interface DirectoryOptions {
  /** The domains we receive mail for (config `domains`). */
  readonly domains: readonly string[];
  /** Subaddress delimiter characters, e.g. '+' (config `recipientDelimiter`); unset: none. */
  readonly recipientDelimiter?: string;
  /** Threads that verify logins (config auth.hashThreads); unset: node's scrypt on libuv's pool. */
  readonly hashPool?: HashPool;
  /** Mailboxes kept outside this file (Dovecot's userdb, config recipients.dovecot): an address
   *  of one of `domains` (empty: every local domain) that nothing here answers for resolves to
   *  itself, to be confirmed through `exists` before RCPT is accepted. */
  readonly outside?: OutsideMailboxes;
}

export interface OutsideMailboxes {
  readonly domains: readonly string[];
  /** True: the mailbox exists; false: it does not; rejects when the answer is in doubt. */
  exists(mailbox: string, signal?: AbortSignal): Promise<boolean>;
}

export type Resolution =
  | {
      readonly kind: 'local';
      /** Canonical addresses of the local mailboxes that receive the message. */
      readonly mailboxes: string[];
      /** Foreign addresses the message is forwarded to. */
      readonly external: string[];
      /** Alias targets that led nowhere, for the log. */
      readonly dropped: string[];
      /** Mailboxes kept outside (Dovecot's userdb) whose existence confirmMailbox must prove. */
      readonly confirm?: string[];
    }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'foreign' };

export interface UserInfo {
  readonly address: string;
  readonly created: Date;
  readonly disabled: boolean;
  /** When the password was last set (`user add`, `user passwd`). */
  readonly passwordSet: Date;
  /** The last successful login (recorded at most once an hour per process); undefined: never. */
  readonly lastLogin?: Date;
}

/** Logins are recorded at most this often per login and process: one write an hour, not one per AUTH. */
const LOGIN_RECORD_MS = 3_600_000;

export interface AliasInfo {
  readonly address: string;
  readonly targets: string[];
}

interface UserRow {
  password: string;
  disabled: number;
}

const DELIMITER_CHARS = /^[-+=_~#$&*^!]+$/;

export class Directory {
  private readonly domains: ReadonlySet<string>;
  private readonly lookup: Lookup;
  private readonly stmt;
  private readonly hashPool: HashPool | undefined;
  private readonly outside: OutsideMailboxes | undefined;
  private readonly outsideDomains: ReadonlySet<string>;
  private readonly recorded = new Map<string, number>();
  #recipientLookups = 0;

  private constructor(
    private readonly db: Database.Database,
    opts: DirectoryOptions,
  ) {
    this.hashPool = opts.hashPool;
    this.outside = opts.outside;
    this.outsideDomains = new Set((opts.outside?.domains.length ? opts.outside.domains : opts.domains).map(normaliseDomain));
    this.domains = new Set(opts.domains.map(normaliseDomain));
    this.stmt = {
      user: db.prepare<[string], UserRow>('SELECT password, disabled FROM users WHERE address = ?'),
      alias: db.prepare<[string], { targets: string }>('SELECT targets FROM aliases WHERE address = ?'),
      insertUser: db.prepare<[string, string, number, number]>('INSERT INTO users (address, password, created, password_set) VALUES (?, ?, ?, ?)'),
      insertAlias: db.prepare<[string, string, number]>('INSERT INTO aliases (address, targets, created) VALUES (?, ?, ?)'),
      deleteUser: db.prepare<[string]>('DELETE FROM users WHERE address = ?'),
      deleteAlias: db.prepare<[string]>('DELETE FROM aliases WHERE address = ?'),
      setPassword: db.prepare<[string, number, string]>('UPDATE users SET password = ?, password_set = ? WHERE address = ?'),
      setLastLogin: db.prepare<[number, string]>('UPDATE users SET last_login = ? WHERE address = ?'),
      setDisabled: db.prepare<[number, string]>('UPDATE users SET disabled = ? WHERE address = ?'),
      listUsers: db.prepare<[], { address: string; created: number; disabled: number; password_set: number; last_login: number | null }>(
        'SELECT address, created, disabled, password_set, last_login FROM users ORDER BY address',
      ),
      listAliases: db.prepare<[], { address: string; targets: string }>('SELECT address, targets FROM aliases ORDER BY address'),
      aliasNames: db.prepare<[], { address: string }>("SELECT address FROM aliases WHERE address NOT LIKE '@%' ORDER BY address"),
    };
    this.lookup = {
      delimiters: opts.recipientDelimiter ?? '',
      isLocalDomain: (d) => this.domains.has(d),
      entry: (key) => this.entry(key),
    };
  }

  /** Opens (creating if needed) the directory file. Throws on an invalid domain or delimiter. */
  static open(path: string, opts: DirectoryOptions): Directory {
    opts.domains.forEach((d, i) => {
      if (!isValidDomain(d)) {
        throw new Error(`config error at domains[${i}]: "${d}" is not a valid domain name; write a name such as example.org`);
      }
    });
    const ours = new Set(opts.domains.map(normaliseDomain));
    opts.outside?.domains.forEach((d, i) => {
      if (!ours.has(normaliseDomain(d))) {
        throw new Error(`config error at recipients.dovecot.domains[${i}]: "${d}" is not one of \`domains\`; list only local domains, or leave it empty for all of them`);
      }
    });
    const delim = opts.recipientDelimiter;
    if (delim !== undefined && delim !== '' && !DELIMITER_CHARS.test(delim)) {
      throw new Error(
        `config error at recipientDelimiter: "${delim}" cannot separate a subaddress; use one or more of the characters + - = _ ~ # $ & * ^ !, e.g. "+"`,
      );
    }
    return new Directory(openDatabase(path), opts);
  }

  close(): void {
    this.db.close();
  }

  /** How many times resolveRecipient ran in this process (metric mailward_directory_lookups_total). */
  get recipientLookups(): number {
    return this.#recipientLookups;
  }

  isLocalDomain(domain: string): boolean {
    return this.domains.has(normaliseDomain(domain));
  }

  // ── mailboxes ────────────────────────────────────────────────────────────

  /** Adds a mailbox. Refuses a foreign domain, an existing mailbox or an address that is an alias. */
  async addUser(address: string, password: string): Promise<void> {
    const k = this.localAddress(address);
    this.assertFree(k.key, 'mailbox');
    const hash = await hashPassword(password);
    // Checked again inside the transaction: another process may have added it while we hashed.
    this.db.transaction(() => {
      this.assertFree(k.key, 'mailbox');
      const now = Date.now();
      this.stmt.insertUser.run(k.key, hash, now, now);
    }).immediate();
  }

  /** Removes a mailbox; false if there was none. */
  deleteUser(address: string): boolean {
    return this.stmt.deleteUser.run(this.parse(address).key).changes > 0;
  }

  async setPassword(address: string, password: string): Promise<void> {
    const k = this.parse(address);
    const hash = await hashPassword(password);
    if (this.stmt.setPassword.run(hash, Date.now(), k.key).changes === 0) throw noSuchUser(k.key);
  }

  /** A disabled mailbox cannot log in and receives no mail (it resolves as unknown). */
  setDisabled(address: string, disabled: boolean): void {
    const k = this.parse(address);
    if (this.stmt.setDisabled.run(disabled ? 1 : 0, k.key).changes === 0) throw noSuchUser(k.key);
  }

  listUsers(): UserInfo[] {
    return this.stmt.listUsers.all().map((r) => ({
      address: r.address,
      created: new Date(r.created),
      disabled: r.disabled !== 0,
      passwordSet: new Date(r.password_set),
      ...(r.last_login !== null ? { lastLogin: new Date(r.last_login) } : {}),
    }));
  }

  /**
   * Checks a login (the full address; case does not matter) and password. An unknown or
   * disabled login costs the same scrypt work as a known one, so timing does not reveal it.
   */
  async authenticate(login: string, password: string): Promise<boolean> {
    const k = addressKey(login);
    const row = isAddressKey(k) ? this.stmt.user.get(k.key) : undefined;
    const ok = await verifyPassword(password, row?.password, this.hashPool);
    if (ok && row?.disabled === 0 && isAddressKey(k)) this.recordLogin(k.key);
    return ok && row?.disabled === 0;
  }

  /** Notes a successful login for doctor's unused-login finding; never fails the login. */
  recordLogin(address: string, now = Date.now()): void {
    if ((this.recorded.get(address) ?? -Infinity) > now - LOGIN_RECORD_MS) return;
    try {
      this.stmt.setLastLogin.run(now, address);
      this.recorded.set(address, now);
    } catch {
      // A busy or read-only file: the next login tries again.
    }
  }

  // ── aliases ──────────────────────────────────────────────────────────────

  /**
   * Adds an alias from a local address to one or more targets, local or foreign. The address
   * `@example.org` is the domain's catch-all: it answers for every address of the domain that
   * is neither a mailbox nor an alias (one extra indexed lookup per unknown recipient).
   */
  addAlias(address: string, targets: readonly string[]): void {
    const key = address.startsWith('@') ? this.catchAllKey(address) : this.localAddress(address).key;
    if (targets.length === 0) throw new Error(`alias ${key} needs at least one target address`);
    const stored = [
      ...new Set(
        targets.map((t) => {
          const k = addressKey(t);
          if (!isAddressKey(k)) throw new Error(`alias ${key}: target "${t}" is not a valid address (${k.error}); write it as user@example.org`);
          // Local targets are stored canonical; foreign ones keep their local-part case.
          return this.domains.has(k.domain) ? k.key : k.address;
        }),
      ),
    ];
    this.db.transaction(() => {
      this.assertFree(key, 'alias');
      this.stmt.insertAlias.run(key, JSON.stringify(stored), Date.now());
    }).immediate();
  }

  /** Removes an alias (or `@domain` catch-all); false if there was none. */
  deleteAlias(address: string): boolean {
    const key = address.startsWith('@') ? `@${normaliseDomain(address.slice(1))}` : this.parse(address).key;
    return this.stmt.deleteAlias.run(key).changes > 0;
  }

  listAliases(): AliasInfo[] {
    return this.stmt.listAliases.all().map((r) => ({ address: r.address, targets: parseTargets(r.targets) }));
  }

  // ── lookups ──────────────────────────────────────────────────────────────

  /**
   * What RCPT TO:<address> reaches. `foreign` for a domain not in `domains`; `unknown` when no
   * mailbox, alias or catch-all answers, or every alias target led nowhere.
   */
  resolveRecipient(address: string): Resolution {
    this.#recipientLookups++;
    const k = addressKey(address);
    if (!isAddressKey(k)) return { kind: 'unknown' };
    if (!this.domains.has(k.domain)) return { kind: 'foreign' };
    const x = expand(this.lookup, k);
    if (!x) return this.outsideMailbox(k);
    if (x.mailboxes.length === 0 && x.external.length === 0) return { kind: 'unknown' };
    return { kind: 'local', ...x };
  }

  /** Whether a mailbox kept outside (see DirectoryOptions.outside) exists; rejects when in doubt. */
  confirmMailbox(mailbox: string, signal?: AbortSignal): Promise<boolean> {
    return this.outside ? this.outside.exists(mailbox, signal) : Promise.resolve(false);
  }

  /** Nothing here answers for k: in a domain whose users live outside, the mailbox to confirm. */
  private outsideMailbox(k: AddressKey): Resolution {
    if (!this.outside || !this.outsideDomains.has(k.domain)) return { kind: 'unknown' };
    // `user+tag` is user's mailbox; a disabled mailbox of ours stays refused, whatever Dovecot says.
    const mailbox = subaddressBase(k, this.lookup.delimiters) ?? k.key;
    if (this.entry(mailbox)) return { kind: 'unknown' };
    return { kind: 'local', mailboxes: [mailbox], external: [], dropped: [], confirm: [mailbox] };
  }

  /**
   * The addresses a login may use as sender: its own, then every alias (not catch-all) whose
   * expansion reaches its mailbox, group aliases included. Empty for an unknown or disabled
   * login. Reads every alias: fine for hundreds, worth an index for many thousands.
   */
  sendAsAllowed(login: string): string[] {
    const k = addressKey(login);
    if (!isAddressKey(k)) return [];
    const row = this.stmt.user.get(k.key);
    if (!row || row.disabled !== 0) return [];
    const owned = [k.key];
    for (const { address } of this.stmt.aliasNames.iterate()) {
      const a = addressKey(address);
      if (isAddressKey(a) && expand(this.lookup, a)?.mailboxes.includes(k.key)) owned.push(a.key);
    }
    return owned;
  }

  // ── helpers ──────────────────────────────────────────────────────────────

  private entry(key: string): Entry | undefined {
    const user = this.stmt.user.get(key);
    if (user) return { kind: 'user', disabled: user.disabled !== 0 };
    const alias = this.stmt.alias.get(key);
    return alias ? { kind: 'alias', targets: parseTargets(alias.targets) } : undefined;
  }

  private parse(address: string): AddressKey {
    const k = addressKey(address);
    if (!isAddressKey(k)) throw new Error(`"${address}" is not a valid address (${k.error}); write it as user@example.org`);
    return k;
  }

  private localAddress(address: string): AddressKey {
    const k = this.parse(address);
    if (!this.domains.has(k.domain)) throw notOurDomain(k.key, k.domain);
    return k;
  }

  private catchAllKey(address: string): string {
    const domain = normaliseDomain(address.slice(1));
    if (!isValidDomain(domain)) throw new Error(`"${address}" is not a valid catch-all; write it as @example.org`);
    if (!this.domains.has(domain)) throw notOurDomain(address, domain);
    return `@${domain}`;
  }

  /** A key names at most one thing: a mailbox or an alias. */
  private assertFree(key: string, adding: 'mailbox' | 'alias'): void {
    if (this.stmt.user.get(key)) {
      throw new Error(
        adding === 'mailbox'
          ? `mailbox ${key} already exists; to change its password use setPassword`
          : `${key} is a mailbox; delete the mailbox first to make it an alias`,
      );
    }
    if (this.stmt.alias.get(key)) {
      throw new Error(
        adding === 'alias'
          ? `alias ${key} already exists; delete it first to change its targets`
          : `${key} is an alias; delete the alias first to make it a mailbox`,
      );
    }
  }
}

function parseTargets(json: string): string[] {
  const v: unknown = JSON.parse(json);
  return Array.isArray(v) ? v.filter((t): t is string => typeof t === 'string') : [];
}

function notOurDomain(address: string, domain: string): Error {
  return new Error(`cannot use ${address}: the domain ${domain} is not one of ours; add it to \`domains\` in the config`);
}

function noSuchUser(key: string): Error {
  return new Error(`no mailbox ${key}; add it first with addUser`);
}
