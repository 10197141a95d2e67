// A self-signed X.509 certificate (ECDSA P-256, SHA-256) for the metrics endpoint, written in DER by hand: node:crypto
// makes and signs with the key but can't write a certificate, and the library that can (@peculiar/x509, with the
// reflect-metadata polyfill it needs) added 21 MiB of RSS to an operator whose whole budget is about 100 MiB
// (issue #14). The certificate is the few fixed fields controller-runtime's self-signed one has; node:crypto's
// X509Certificate parses and verifies it in test/unit/self-signed.test.ts.
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import ipaddr from "ipaddr.js";

export interface SelfSigned {
  /** PEM. */
  cert: string;
  /** PKCS#8 PEM. */
  key: string;
}

const OID = {
  ecdsaWithSHA256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length =
    n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

const sequence = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const explicit = (n: number, item: Buffer) => tlv(0xa0 + n, item);
const octetString = (content: Buffer) => tlv(0x04, content);
const bitString = (content: Buffer, unusedBits = 0) => tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), content]));
const TRUE = tlv(0x01, Buffer.from([0xff]));

function integer(bytes: Buffer): Buffer {
  // DER integers are signed: a leading 1 bit would make the serial negative.
  return tlv(0x02, (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split(".").map(Number);
  const out = [40 * first + second];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) base128.unshift((v & 0x7f) | 0x80);
    out.push(...base128);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime through 2049, GeneralizedTime after, as RFC 5280 requires. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z"; // YYYYMMDDHHMMSSZ
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

const name = (cn: string) => sequence(set(sequence(oid(OID.commonName), tlv(0x0c, Buffer.from(cn, "utf8")))));

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [TRUE] : []), octetString(value));
}

/** dNSName [2] and iPAddress [7] of a GeneralName; an IP address by its bytes (4 or 16). */
function generalName(host: string): Buffer {
  return ipaddr.isValid(host)
    ? tlv(0x87, Buffer.from(ipaddr.parse(host).toByteArray()))
    : tlv(0x82, Buffer.from(host, "ascii"));
}

/** A certificate for `names` (the first is the subject's CN), valid from a minute before `now` for `days`. */
export function selfSignedCertificate(names: string[], days: number, now = new Date()): SelfSigned {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const algorithm = sequence(oid(OID.ecdsaWithSHA256));
  const subject = name(names[0] ?? "localhost");
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40; // positive, and no leading zero byte (DER is minimal)
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    algorithm,
    subject,
    sequence(time(new Date(now.getTime() - 60_000)), time(new Date(now.getTime() + days * 86_400_000))),
    subject,
    publicKey.export({ type: "spki", format: "der" }),
    explicit(
      3,
      sequence(
        extension(OID.basicConstraints, true, sequence()), // not a CA
        extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature
        extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, sequence(...names.map(generalName))),
      ),
    ),
  );
  // ECDSA signatures from node:crypto are DER (r, s) already, as X.509 wants them.
  const certificate = sequence(tbs, algorithm, bitString(sign("sha256", tbs, privateKey)));
  const base64 = certificate.toString("base64").replace(/.{64}/g, "$&\n");
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${base64.trimEnd()}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}
