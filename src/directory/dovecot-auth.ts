// Password checks through Dovecot's auth socket (the auth-client protocol, as Postfix's
// smtpd_sasl_type = dovecot): the users who log in to IMAP log in to submission with the same
// passwords. One short connection per check: VERSION, CPID, wait for Dovecot's DONE, then
// AUTH <id> PLAIN service=smtp resp=<base64> and read OK or FAIL.
import { connect } from 'node:net';

export interface DovecotAuthOptions {
  /** The auth-client unix socket, e.g. /var/spool/postfix/private/auth or /run/dovecot/auth-client. */
  readonly socket: string;
  /** The service name Dovecot's passdb sees (%s): "smtp". */
  readonly service: string;
  readonly timeoutMs: number;
}

export class DovecotAuthError extends Error {
  override name = 'DovecotAuthError';
}

let nextId = 1;

export class DovecotAuth {
  constructor(private readonly o: DovecotAuthOptions) {}

  /**
   * True when Dovecot accepts the password. Rejects (DovecotAuthError) when Dovecot cannot be
   * asked: the caller answers 454 (try later), never 535 and never success.
   */
  authenticate(login: string, password: string, facts: { readonly secured?: boolean } = {}): Promise<boolean> {
    const id = nextId++;
    // RFC 4616: authzid NUL authcid NUL passwd; no authzid (we never allow proxy authorization).
    const resp = Buffer.from(`\0${login}\0${password}`, 'utf8').toString('base64');
    // no-penalty: Mailward's own guard (auth-guard.ts) counts and delays failures; Dovecot's
    // penalty would delay the reply for every user behind one NAT address as well.
    const fields = ['AUTH', String(id), 'PLAIN', `service=${this.o.service}`, 'no-penalty', ...(facts.secured ? ['secured'] : []), `resp=${resp}`];
    return new Promise<boolean>((resolve, reject) => {
      const sock = connect({ path: this.o.socket });
      let buf = '';
      let done = false;
      const finish = (err: Error | undefined, ok = false): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(ok);
      };
      const timer = setTimeout(() => finish(new DovecotAuthError(`no answer from Dovecot's auth socket ${this.o.socket} within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
      sock.on('error', (err: NodeJS.ErrnoException) => finish(new DovecotAuthError(`cannot use Dovecot's auth socket ${this.o.socket}: ${err.code ?? err.message}`)));
      sock.on('close', () => finish(new DovecotAuthError(`Dovecot's auth socket ${this.o.socket} closed the connection`)));
      sock.write(`VERSION\t1\t2\nCPID\t${process.pid}\n`);
      sock.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
          const f = buf.slice(0, nl).split('\t');
          buf = buf.slice(nl + 1);
          if (f[0] === 'VERSION' && f[1] !== '1') return finish(new DovecotAuthError(`Dovecot's auth socket speaks protocol version ${f[1]}, not 1`));
          if (f[0] === 'DONE') sock.write(fields.join('\t') + '\n');
          else if (f[1] === String(id) && f[0] === 'OK') return finish(undefined, true);
          else if (f[1] === String(id) && (f[0] === 'FAIL' || f[0] === 'CONT')) {
            // A FAIL with "temp" is Dovecot's own trouble (its passdb is down): try later.
            if (f.includes('temp')) return finish(new DovecotAuthError(`Dovecot could not check the password (temporary failure)`));
            return finish(undefined, false);
          }
        }
        if (buf.length > 65_536) finish(new DovecotAuthError(`over-long line from Dovecot's auth socket ${this.o.socket}`));
      });
    });
  }
}
