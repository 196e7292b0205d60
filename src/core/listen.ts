// One way to open a TCP listener and wait for it: the HTTP-style servers (ACME responders, the
// admin API, the MTA-STS policy server) all need "listen, or reject with the bind error" so the
// caller can explain EACCES/EADDRINUSE with the setting that named the port.
import type { AddressInfo, Server } from 'node:net';

/** Listens on host:port; rejects with the listen error (EACCES, EADDRINUSE) for the caller to explain. */
export function listenOn(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
