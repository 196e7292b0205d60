// `mailward user ...` and `mailward alias ...`: manage mailboxes and aliases in the directory
// the running server reads (changes count at once, no restart).
import type { Command } from 'commander';
import { openDirectory, type Directory } from '../../app/accounts.ts';
import { parseMailbox } from '../../core/address.ts';
import { CliError, EXIT, configFrom } from './index.ts';
import { readPassword } from './password-input.ts';

const MIN_PASSWORD = 10;

function address(text: string, what: string): string {
  const r = parseMailbox(text, { role: 'recipient' });
  if (!r.ok) throw new CliError(`${what} ${JSON.stringify(text)} is not a valid address (${r.error}); write it as user@example.org`, EXIT.usage);
  return r.mailbox.address;
}

async function newPassword(stdin: boolean): Promise<string> {
  const pw = await readPassword({ stdin });
  if (pw.length < MIN_PASSWORD) throw new CliError(`the password is ${pw.length} characters long; use at least ${MIN_PASSWORD}`, EXIT.usage);
  return pw;
}

export function registerAccounts(program: Command): void {
  const user = program.command('user').description('manage mailboxes (login = the full address)');
  // add and passwd differ only in what they do with the address and the new password.
  const withPassword = (name: string, description: string, apply: (dir: Directory, a: string, pw: string) => Promise<void>, done: string): void => {
    user
      .command(`${name} <address>`)
      .description(description)
      .option('--password-stdin', 'read the password from the first line of stdin')
      .action(async (addr: string, opts: { passwordStdin?: boolean }, cmd: Command) => {
        const config = configFrom(cmd);
        const a = address(addr, 'address');
        const pw = await newPassword(opts.passwordStdin === true);
        const dir = openDirectory(config);
        try {
          await apply(dir, a, pw);
        } finally {
          dir.close();
        }
        process.stdout.write(`${done} ${a}\n`);
      });
  };
  withPassword('add', 'create a mailbox; the password is asked on the terminal or read from stdin', (dir, a, pw) => dir.addUser(a, pw), 'added');
  user
    .command('del <address>')
    .description('delete a mailbox (its Maildir stays on disk)')
    .action((addr: string, _opts, cmd: Command) => {
      const dir = openDirectory(configFrom(cmd));
      try {
        const a = address(addr, 'address');
        if (!dir.deleteUser(a)) throw new CliError(`there is no user ${a}; see "mailward user list"`);
        process.stdout.write(`deleted ${a}\n`);
      } finally {
        dir.close();
      }
    });
  withPassword('passwd', 'set a new password', (dir, a, pw) => dir.setPassword(a, pw), 'password changed for');
  user
    .command('list')
    .description('list mailboxes')
    .option('--json', 'one JSON object per line')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const dir = openDirectory(configFrom(cmd));
      try {
        for (const u of dir.listUsers()) {
          process.stdout.write(opts.json ? `${JSON.stringify(u)}\n` : `${u.address}${u.disabled ? ' (disabled)' : ''}\n`);
        }
      } finally {
        dir.close();
      }
    });

  const alias = program.command('alias').description('manage aliases (an address that delivers to other addresses)');
  alias
    .command('add <address> <targets...>')
    .description('create or replace an alias; targets may be local mailboxes or outside addresses')
    .action((addr: string, targets: string[], _opts, cmd: Command) => {
      const dir = openDirectory(configFrom(cmd));
      try {
        const a = addr.startsWith('@') ? addr.toLowerCase() : address(addr, 'alias');
        dir.addAlias(a, targets.map((t) => address(t, 'target')));
        process.stdout.write(`${a} -> ${targets.join(', ')}\n`);
      } finally {
        dir.close();
      }
    });
  alias
    .command('del <address>')
    .description('delete an alias')
    .action((addr: string, _opts, cmd: Command) => {
      const dir = openDirectory(configFrom(cmd));
      try {
        if (!dir.deleteAlias(addr)) throw new CliError(`there is no alias ${addr}; see "mailward alias list"`);
        process.stdout.write(`deleted ${addr}\n`);
      } finally {
        dir.close();
      }
    });
  alias
    .command('list')
    .description('list aliases')
    .option('--json', 'one JSON object per line')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const dir = openDirectory(configFrom(cmd));
      try {
        for (const a of dir.listAliases()) process.stdout.write(opts.json ? `${JSON.stringify(a)}\n` : `${a.address} -> ${a.targets.join(', ')}\n`);
      } finally {
        dir.close();
      }
    });
}
