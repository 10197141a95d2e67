// The hand-written self-signed certificate (src/runtime/self-signed.ts), read back by node:crypto's own X.509
// parser and used by a real TLS handshake: a DER mistake would fail either.
import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { once } from "node:events";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { selfSignedCertificate } from "../../src/runtime/self-signed.js";

describe("runtime/self-signed: the metrics endpoint's certificate", () => {
  const now = new Date("2026-11-29T10:00:00Z");
  const { cert, key } = selfSignedCertificate(["operator-7d9f", "localhost", "127.0.0.1", "::1"], 365, now);
  const x509 = new X509Certificate(cert);

  it("is a self-signed v3 certificate for the names given, signed by its own key", () => {
    assert.equal(x509.subject, "CN=operator-7d9f");
    assert.equal(x509.issuer, x509.subject);
    assert.ok(x509.verify(x509.publicKey), "the signature verifies with its own public key");
    assert.ok(x509.checkPrivateKey(createPrivateKey(key)), "the key is the certificate's");
    assert.equal(x509.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.equal(x509.ca, false);
    assert.equal(
      x509.subjectAltName,
      "DNS:operator-7d9f, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
    );
    assert.deepEqual(x509.keyUsage, ["1.3.6.1.5.5.7.3.1"]); // node names the extended key usage so: serverAuth
    assert.ok(x509.checkHost("localhost"));
    assert.ok(x509.checkIP("127.0.0.1"));
    assert.equal(x509.checkHost("elsewhere.example"), undefined);
  });

  it("is valid from a minute before it was made for the days asked, in UTCTime and after 2049 in GeneralizedTime", () => {
    assert.equal(new Date(x509.validFrom).toISOString(), "2026-11-29T09:59:00.000Z");
    assert.equal(new Date(x509.validTo).toISOString(), "2027-11-29T10:00:00.000Z");
    const late = new X509Certificate(selfSignedCertificate(["a"], 30, new Date("2049-12-20T00:00:00Z")).cert);
    assert.equal(new Date(late.validTo).toISOString(), "2050-01-19T00:00:00.000Z");
  });

  it("gets a serial of its own each time, positive and minimal as DER wants", () => {
    const serials = new Set(
      Array.from({ length: 20 }, () => new X509Certificate(selfSignedCertificate(["a"], 1).cert).serialNumber),
    );
    assert.equal(serials.size, 20);
    for (const s of serials) assert.match(s, /^[4-7][0-9A-F]{31}$/);
  });

  it("serves a TLS handshake that a client trusting it completes, for an IP address name", async () => {
    const server = https.createServer({ cert, key }, (_req, res) => res.end("ok"));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const { port } = server.address() as AddressInfo;
      const body = await new Promise<string>((resolve, reject) => {
        https
          .get({ host: "127.0.0.1", port, path: "/", ca: cert }, (res) => {
            let text = "";
            res.setEncoding("utf8").on("data", (d: string) => (text += d));
            res.on("end", () => resolve(text));
          })
          .on("error", reject);
      });
      assert.equal(body, "ok");
    } finally {
      server.close();
    }
  });
});
