// Turns a plan into files: the config (YAML), the smarthost password files (0600), and the
// mailboxes and aliases through the same directory code `mailward user add` / `alias add` use.
// Before anything is written the result is loaded as the server would load it and audited by
// doctor's config audit, so the report shows what Mailward itself thinks of the result.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { openDirectory } from '../../app/accounts.ts';
import { ALL_CHECKS } from '../../checks/index.ts';
import { ConfigError } from '../../config/errors.ts';
import { buildConfig, type Config } from '../../config/load.ts';
import { auditConfig } from '../../doctor/audit-config.ts';
import { formatFinding, type Finding } from '../../doctor/finding.ts';
import { formatReport } from './report.ts';
import { planImport, type ImportPlan } from './translate.ts';
import type { PostfixSources } from './settings.ts';

export interface ImportOptions extends PostfixSources {
  /** The config file to write. */
  readonly out: string;
  readonly dryRun: boolean;
  /** Replace an existing config file. */
  readonly force?: boolean;
}

export interface ImportResult {
  readonly plan: ImportPlan;
  readonly findings: readonly Finding[];
  /** The report as printed. */
  readonly text: string;
  /** 0: written (or dry run) and the result passes doctor's config audit; 1: it does not. */
  readonly code: number;
  readonly yaml: string;
}

/** What Mailward says about the result: load errors, check options, then doctor's config audit. */
export function auditResult(plan: ImportPlan, out: string): { config?: Config; findings: Finding[] } {
  let config: Config;
  try {
    config = buildConfig(plan.config, out, path.dirname(path.resolve(out)));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { findings: err.problems.map((p) => ({ id: 'config-invalid', severity: 'error', setting: p.path || '(top level)', message: p.message, fix: p.fix })) };
  }
  const findings: Finding[] = [];
  for (const [name, opts] of Object.entries(config.checks)) {
    const def = ALL_CHECKS.find((d) => d.name === name);
    const r = def?.options.safeParse(opts);
    if (r && !r.success) findings.push({ id: 'check-options', severity: 'error', setting: `checks.${name}`, message: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '), fix: 'correct the entries the importer wrote (see the report above)' });
  }
  return { config, findings: [...findings, ...auditConfig(config)] };
}

export async function importPostfix(opts: ImportOptions): Promise<ImportResult> {
  const plan = planImport(opts);
  const { config, findings } = auditResult(plan, opts.out);
  const header = `# Imported from Postfix (${opts.configDir}${opts.root === '/' ? '' : ` under ${opts.root}`}) by "mailward import postfix".\n# Defaults: ${plan.defaultsFrom}. Read the import report before starting the server.\n`;
  const yaml = header + stringify(plan.config);
  const lines = findings.map(formatFinding);
  const code = findings.some((f) => f.severity === 'error') ? 1 : 0;
  if (opts.dryRun || !config) {
    const what = opts.dryRun ? `dry run: nothing written (would write ${opts.out}, ${plan.users.length} mailboxes, ${plan.aliases.size} aliases, ${plan.secrets.size} password files)` : `nothing written: the result does not load`;
    return { plan, findings, yaml, code: config ? code : 1, text: `${formatReport(plan.report, lines)}${what}\n` };
  }
  if (existsSync(opts.out) && !opts.force) throw new Error(`${opts.out} exists; choose another --out, or add --force to replace it`);
  const dir = path.dirname(path.resolve(opts.out));
  mkdirSync(dir, { recursive: true });
  for (const [file, content] of plan.secrets) writeFileSync(path.join(dir, file), content, { mode: 0o600 });
  writeFileSync(opts.out, yaml, { mode: 0o640 });
  const done = await writeDirectory(config, plan);
  return { plan, findings, yaml, code, text: `${formatReport(plan.report, lines)}wrote ${opts.out}; ${done}\n` };
}

/** Mailboxes get a random password nobody knows (logins need `mailward user passwd` or Dovecot). */
async function writeDirectory(config: Config, plan: ImportPlan): Promise<string> {
  const dir = openDirectory(config);
  const problems: string[] = [];
  let users = 0;
  let aliases = 0;
  try {
    for (const u of plan.users) {
      try {
        await dir.addUser(u, randomBytes(24).toString('base64url'));
        users++;
      } catch (err) {
        problems.push(`mailbox ${u}: ${(err as Error).message}`);
      }
    }
    for (const [a, targets] of plan.aliases) {
      try {
        dir.addAlias(a, [...targets]);
        aliases++;
      } catch (err) {
        problems.push(`alias ${a}: ${(err as Error).message}`);
      }
    }
  } finally {
    dir.close();
  }
  return `${users} mailboxes, ${aliases} aliases added to ${config.paths.directory}${problems.length ? `\nnot added:\n  ${problems.join('\n  ')}` : ''}`;
}
