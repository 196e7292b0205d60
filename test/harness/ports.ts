// A free TCP port on loopback, for servers that cannot listen on port 0 themselves (Redis, clamd,
// Postfix, a child process): ask the kernel for one and release it at once.
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('freePort: the listener has no TCP address');
  return addr.port;
}
