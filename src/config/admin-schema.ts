// The `admin` section of the config: the operator's HTTP API, dashboard and /metrics. Off by
// default; when on, bound to loopback unless told otherwise, and every request but the static
// page needs the bearer token kept in `tokenFile` (never in the config text itself).
import { z } from 'zod';

export const AdminSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** Address to listen on. Loopback by default: reach it through an SSH tunnel or a reverse proxy. */
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8025),
    /** A file holding only the bearer token (at least 16 characters; a trailing newline is
     *  ignored). Make one with: head -c 32 /dev/urandom | base64 > /etc/mailward/admin.token */
    tokenFile: z.string().min(1).optional(),
    /** /metrics needs the token too; false lets a Prometheus on this host scrape without it. */
    metricsRequireToken: z.boolean().default(true),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.enabled && a.tokenFile === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['tokenFile'],
        message: 'admin.enabled is true but no admin.tokenFile is given',
        params: { fix: 'set admin.tokenFile to a file holding a random token, e.g. made with: head -c 32 /dev/urandom | base64 > /etc/mailward/admin.token' },
      });
    }
  });

export type AdminConfig = z.output<typeof AdminSchema>;
