// Both ends of the relay that lets the data plane's namespace reach the host's kube-apiserver over a Unix socket.
import net from "node:net";

/** A server that pipes each connection to a new one from `connect`, both ways, and closes both on an error. */
export function relay(connect: () => net.Socket): net.Server {
  return net.createServer((inbound) => {
    const outbound = connect();
    inbound.pipe(outbound).pipe(inbound);
    const close = () => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", close);
    outbound.on("error", close);
  });
}
