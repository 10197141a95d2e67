// A minimal DNS client over UDP for the traffic probe. Node's resolver (c-ares) follows a CNAME and folds
// NXDOMAIN, NODATA and a CNAME into one error code, which is exactly what the probe must tell apart; so it
// asks the server itself and reads the answer section.
import dgram from "node:dgram";
import ipaddr from "ipaddr.js";

export type QueryType = "A" | "AAAA";

const TYPE_CODE: Record<QueryType | "CNAME", number> = { A: 1, AAAA: 28, CNAME: 5 };
/** The rcodes the probe names (RFC 1035 4.1.1). */
export const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

export interface DnsAnswer {
  rcode: number;
  addresses: string[];
  cnames: string[];
}

export class DnsTimeout extends Error {}

/** One UDP socket per server, queries told apart by their id. */
export class DnsClient {
  private readonly socket: dgram.Socket;
  private readonly pending = new Map<number, (answer: DnsAnswer | Error) => void>();
  private nextId = Math.floor(Math.random() * 0xffff);

  constructor(
    private readonly server: string,
    private readonly port = 53,
  ) {
    this.socket = dgram.createSocket(server.includes(":") ? "udp6" : "udp4");
    this.socket.on("message", (message) => {
      const id = message.readUInt16BE(0);
      const resolve = this.pending.get(id);
      if (!resolve) return;
      this.pending.delete(id);
      try {
        resolve(parseAnswer(message));
      } catch (err) {
        resolve(err instanceof Error ? err : new Error(String(err)));
      }
    });
    // A closed server answers ICMP port unreachable; the query then times out like a lost packet.
    this.socket.on("error", () => undefined);
  }

  query(name: string, type: QueryType, timeoutMs: number): Promise<DnsAnswer> {
    let id = (this.nextId = (this.nextId + 1) & 0xffff);
    while (this.pending.has(id)) id = this.nextId = (this.nextId + 1) & 0xffff;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DnsTimeout(`no answer for ${type} ${name} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (answer) => {
        clearTimeout(timer);
        if (answer instanceof Error) reject(answer);
        else resolve(answer);
      });
      this.socket.send(encodeQuery(id, name, TYPE_CODE[type]), this.port, this.server);
    });
  }

  close(): void {
    this.socket.close();
  }
}

function encodeQuery(id: number, name: string, type: number): Buffer {
  const labels = name.replace(/\.$/, "").split(".");
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD: a stub resolver's query
  header.writeUInt16BE(1, 4);
  const parts = [header];
  for (const label of labels) parts.push(Buffer.from([label.length]), Buffer.from(label, "ascii"));
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(type, 1);
  tail.writeUInt16BE(1, 3); // class IN
  parts.push(tail);
  return Buffer.concat(parts);
}

/** A name at `offset`, following compression pointers; returns it and the offset after it in the message. */
function readName(message: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let next = -1;
  for (let hops = 0; hops < 64; hops++) {
    const length = message[offset] ?? 0;
    if ((length & 0xc0) === 0xc0) {
      if (next < 0) next = offset + 2;
      offset = ((length & 0x3f) << 8) | (message[offset + 1] ?? 0);
      continue;
    }
    if (length === 0) return { name: labels.join("."), next: next < 0 ? offset + 1 : next };
    labels.push(message.toString("ascii", offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  throw new Error("DNS name compression loop");
}

export function parseAnswer(message: Buffer): DnsAnswer {
  const rcode = message.readUInt16BE(2) & 0x0f;
  const questions = message.readUInt16BE(4);
  const answers = message.readUInt16BE(6);
  let offset = 12;
  for (let i = 0; i < questions; i++) offset = readName(message, offset).next + 4;
  const out: DnsAnswer = { rcode, addresses: [], cnames: [] };
  for (let i = 0; i < answers; i++) {
    offset = readName(message, offset).next;
    const type = message.readUInt16BE(offset);
    const length = message.readUInt16BE(offset + 8);
    const data = offset + 10;
    if (type === TYPE_CODE.A && length === 4) out.addresses.push([...message.subarray(data, data + 4)].join("."));
    else if (type === TYPE_CODE.AAAA && length === 16) {
      out.addresses.push(ipaddr.fromByteArray([...message.subarray(data, data + 16)]).toString());
    } else if (type === TYPE_CODE.CNAME) out.cnames.push(readName(message, data).name);
    offset = data + length;
  }
  return out;
}
