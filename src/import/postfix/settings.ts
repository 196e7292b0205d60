// One view of the old server's settings: main.cf, then a master.cf service's -o overrides, then
// Postfix's defaults, each value expanded ($name) and with the line it came from.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expand, listOf, parseMainCfLines, type Param } from './main-cf.ts';
import { parseMasterCf, type Service } from './master-cf.ts';
import { loadDefaults, type Defaults } from './defaults.ts';
import { underRoot } from './maps.ts';

export interface PostfixSources {
  /** Filesystem root of the old server ("/" here; a copy of its disk elsewhere). */
  readonly root: string;
  /** Its config directory as the old server sees it (default /etc/postfix). */
  readonly configDir: string;
  /** The program to ask for defaults, or false for the built-in table. */
  readonly postconf?: string | false;
}

export class PostfixSettings {
  readonly main: ReadonlyMap<string, Param>;
  /** Every main.cf definition in order, earlier ones of a name defined twice included. */
  readonly mainLines: readonly Param[];
  /** Lines of main.cf and master.cf that are neither a setting nor a service (Postfix refuses to start). */
  readonly unparsed: Array<{ source: string; text: string }> = [];
  readonly services: readonly Service[];
  readonly defaults: Defaults;
  readonly root: string;
  readonly configDir: string;
  /** Every main.cf line and -o override the importer has looked at (directly or through $name). */
  private readonly consumed = new Set<Param>();
  private readonly usedServices = new Set<Service>();
  private tracking = true;

  constructor(src: PostfixSources) {
    this.root = src.root;
    this.configDir = src.configDir;
    const dir = underRoot(src.root, src.configDir);
    const mainFile = path.join(dir, 'main.cf');
    if (!existsSync(mainFile)) throw new Error(`no main.cf in ${dir}; give the Postfix config folder with --config-dir (and --root for a copy of another server's disk)`);
    this.mainLines = parseMainCfLines(readFileSync(mainFile, 'utf8'), 'main.cf', this.unparsed);
    this.main = new Map(this.mainLines.map((p) => [p.name, p]));
    const masterFile = path.join(dir, 'master.cf');
    this.services = existsSync(masterFile) ? parseMasterCf(readFileSync(masterFile, 'utf8'), 'master.cf', this.unparsed) : [];
    this.defaults = loadDefaults(src.postconf ?? 'postconf');
  }

  private raw(name: string, svc?: Service): Param | undefined {
    const o = svc?.overrides.get(name);
    if (o) return this.read(o);
    const m = this.main.get(name);
    if (m) return this.read(m);
    const d = this.defaults.values.get(name);
    return d === undefined ? undefined : { name, value: d, source: 'default' };
  }

  private read(p: Param): Param {
    if (this.tracking) this.consumed.add(p);
    return p;
  }

  /** Runs `fn` without counting what it reads (for the listing of what was not read). */
  quietly<T>(fn: () => T): T {
    this.tracking = false;
    try {
      return fn();
    } finally {
      this.tracking = true;
    }
  }

  /** A master.cf service became part of the result (a listener, a policy service). */
  useService(svc: Service): void {
    this.usedServices.add(svc);
  }

  wasUsed(svc: Service): boolean {
    return this.usedServices.has(svc);
  }

  /** The importer read this main.cf line or -o (its value took part in the result). */
  wasRead(p: Param): boolean {
    return this.consumed.has(p);
  }

  /** The expanded value (empty when unknown). -o values may name main.cf parameters ($mua_...). */
  get(name: string, svc?: Service): string {
    const p = this.raw(name, svc);
    return p ? expand(p.value, (n) => this.raw(n, svc)?.value).trim() : '';
  }

  list(name: string, svc?: Service): string[] {
    return listOf(this.get(name, svc));
  }

  /** Where a value came from: "main.cf:12", "master.cf:20 (-o)" or "default". */
  source(name: string, svc?: Service): string {
    return this.raw(name, svc)?.source ?? 'default';
  }

  /** Set in main.cf or -o (not a default). */
  isSet(name: string, svc?: Service): boolean {
    return this.source(name, svc) !== 'default';
  }

  yes(name: string, svc?: Service): boolean {
    return /^(yes|true|1)$/i.test(this.get(name, svc));
  }

  /** A relative smtpd_sasl_path or private/ socket is under queue_directory, as Postfix's chroot sees it. */
  socketPath(p: string): string {
    return path.isAbsolute(p) ? p : path.posix.join(this.get('queue_directory') || '/var/spool/postfix', p);
  }
}
