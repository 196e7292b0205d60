// The `delivery` section of the config: how mail that is not for a local mailbox leaves
// (routing table, smarthost, direct MX), retries are in `queue`. Plugged into schema.ts.
import { z } from 'zod';

export const DeliverySchema = z.object({}).strict();
export type DeliveryConfig = z.output<typeof DeliverySchema>;
