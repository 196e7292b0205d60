// What the report readers (DMARC aggregate, TLS-RPT) keep of a report mail beside the parsed
// report, and the store key that keeps each report once per (organization, report id).

/** When we got it (ms since the epoch), the envelope sender and the file it came in. */
export interface ReportReceipt {
  readonly receivedAt: number;
  readonly from: string;
  readonly file: string;
}

/** The store key of a report under `prefix`, once per (organization, report id). */
export const receivedReportKey = (prefix: string, org: string, id: string): string => `${prefix}${encodeURIComponent(org.toLowerCase())}:${encodeURIComponent(id)}`;
