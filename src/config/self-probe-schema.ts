// The relay self-probe (app/self-probe.ts): the server runs `relay-test` against its own
// listeners, and any public address given, on a schedule and after every reload, and alerts when
// any relay trick is accepted. On by default: an open relay found an hour after the change that
// made it is a small incident; found by a spammer first, it is the seed's incident.
import { z } from 'zod';
import { Duration } from './units.ts';

const Target = z
  .object({
    /** A public address of this server, e.g. the tunnel's or load balancer's far end. */
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(25),
    tls: z.enum(['none', 'starttls', 'implicit']).default('none'),
  })
  .strict();

export const SelfProbeSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** How often the probe runs (and once shortly after start). */
    interval: Duration.refine((v) => v >= 1000, { message: 'is shorter than 1s', params: { fix: 'write at least "1s"; the default is "1h"' } }).default(3_600_000),
    /** Also run after each config reload (SIGHUP). */
    afterReload: z.boolean().default(true),
    /** Addresses beyond the own listeners (probed over the network: make sure they are yours). */
    targets: z.array(Target).default([]),
    /** Limit for connecting and for each reply. */
    timeout: Duration.default(10_000),
  })
  .strict();
export type SelfProbeSettings = z.output<typeof SelfProbeSchema>;
