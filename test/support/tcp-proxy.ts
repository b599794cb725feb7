import net from "node:net";

/**
 * A TCP proxy on 127.0.0.1 in front of a database server, standing for the address clients know
 * during a failover: `blackhole()` makes the address stop answering (connections are accepted
 * and then hear nothing, as when packets go nowhere), `forward()` makes it answer again, and
 * connections waiting meanwhile go through then.
 */
export interface TcpProxy {
  port: number;
  blackhole(): void;
  forward(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let answering = true;
  const waiting = new Set<net.Socket>();
  const open = new Set<net.Socket>();

  const connect = (client: net.Socket) => {
    const upstream = net.connect(target.port, target.host);
    open.add(client);
    open.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream).pipe(client);
  };

  const server = net.createServer((client) => {
    if (answering) return connect(client);
    client.pause();
    waiting.add(client);
    client.on("error", () => waiting.delete(client)).on("close", () => waiting.delete(client));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));

  return {
    port: (server.address() as net.AddressInfo).port,
    blackhole() {
      answering = false;
      // established connections go silent too: nothing they send gets an answer
      for (const socket of open) socket.pause();
    },
    forward() {
      answering = true;
      for (const socket of open) socket.resume();
      for (const client of waiting) {
        waiting.delete(client);
        connect(client);
        client.resume();
      }
    },
    async close() {
      for (const socket of [...open, ...waiting]) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
