// A plain TCP forwarder, like an SSH port-forward or socat: listens on 127.0.0.1 port 0 and pipes
// each client to a target port, so the server sees 127.0.0.1 whoever the client is. Optionally it
// plays a proxy and prepends a PROXY v1/v2 header claiming another client address.
import net from 'node:net';
import type { TestContext } from 'node:test';
import { proxyHeader } from '../../src/ingress/proxy-header.ts';

export interface ForwarderOptions {
  /** Prepend a PROXY header claiming `source` (port: `sourcePort`, default the client's own port). */
  readonly proxy?: { readonly version: 1 | 2; readonly source: string; readonly sourcePort?: number };
  readonly targetHost?: string;
}

export interface Forwarder {
  readonly port: number;
  /** Connections forwarded so far. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function startForwarder(t: TestContext | undefined, targetPort: number, opts: ForwarderOptions = {}): Promise<Forwarder> {
  const targetHost = opts.targetHost ?? '127.0.0.1';
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    connections++;
    track(client);
    const upstream = net.connect({ host: targetHost, port: targetPort });
    track(upstream);
    // Either side failing or closing ends the pair, as a tunnel does.
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    upstream.once('connect', () => {
      if (opts.proxy) {
        const source = { address: opts.proxy.source, port: opts.proxy.sourcePort ?? client.remotePort ?? 0 };
        upstream.write(proxyHeader(opts.proxy.version, source, { address: targetHost, port: targetPort }));
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    return closed;
  };
  t?.after(close);
  return {
    port,
    get connections() {
      return connections;
    },
    close,
  };
}
