// HTTPS with authentication and authorization for /metrics, as controller-runtime's
// filters.WithAuthenticationAndAuthorization does it (kubebuilder v4's default): the scraper sends a bearer
// token, the API server says who it belongs to (TokenReview) and whether that identity may `get` the
// non-resource URL (SubjectAccessReview). Prometheus's ServiceAccount then needs only a ClusterRole with
// nonResourceURLs: [/metrics], verbs: [get].
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import type { KubeClient } from "./client.js";
import { realClock, type Clock } from "./clock.js";
import { errorMessage } from "./errors.js";
import { selfSignedCertificate } from "./self-signed.js";

export const TOKEN_REVIEWS_PATH = "/apis/authentication.k8s.io/v1/tokenreviews";
export const SUBJECT_ACCESS_REVIEWS_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
/** kubebuilder's file names in --metrics-cert-dir (those of a kubernetes.io/tls Secret). */
export const DEFAULT_CERT_NAME = "tls.crt";
export const DEFAULT_KEY_NAME = "tls.key";

/** How long a review's answer is reused: a scrape every 15-30 s must not cost two API calls each time. */
const ALLOWED_TTL_MS = 60_000;
/** Shorter for a refusal, so that a binding just created takes effect soon. */
const REFUSED_TTL_MS = 10_000;
/** A flood of made-up tokens must not grow the cache without bound. */
const MAX_CACHED = 1000;
/** A self-signed certificate outlives any process that made it; a restart makes a new one. */
const SELF_SIGNED_DAYS = 365;

export interface TlsMaterial {
  cert: string;
  key: string;
}

export interface Decision {
  /** 200 to serve, 401 without a valid token, 403 when the identity may not get the path, 500 when a review failed. */
  code: 200 | 401 | 403 | 500;
  message: string;
}

interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

interface TokenReview {
  status?: { authenticated?: boolean; user?: UserInfo; error?: string };
}

interface SubjectAccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

/**
 * Decides whether a request's bearer token may `verb` a non-resource path, by TokenReview and
 * SubjectAccessReview, and remembers the answer for a while (by a hash of the token, never the token itself).
 */
export class ReviewAuthorizer {
  private readonly cache = new Map<string, { until: number; decision: Decision }>();
  private readonly clock: Clock;
  private readonly allowedTtlMs: number;
  private readonly refusedTtlMs: number;

  constructor(
    private readonly client: KubeClient,
    options: { clock?: Clock; allowedTtlMs?: number; refusedTtlMs?: number } = {},
  ) {
    this.clock = options.clock ?? realClock;
    this.allowedTtlMs = options.allowedTtlMs ?? ALLOWED_TTL_MS;
    this.refusedTtlMs = options.refusedTtlMs ?? REFUSED_TTL_MS;
  }

  async decide(authorization: string | undefined, verb: string, urlPath: string): Promise<Decision> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
    if (!token) return { code: 401, message: "Unauthorized: a bearer token is required" };
    const key = createHash("sha256").update(`${verb} ${urlPath} ${token}`).digest("hex");
    const now = this.clock.now();
    const cached = this.cache.get(key);
    if (cached && cached.until > now) return cached.decision;
    const decision = await this.review(token, verb, urlPath);
    // A failed review is not remembered: the next scrape asks again.
    if (decision.code !== 500) {
      this.cache.delete(key);
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value ?? "");
      const ttl = decision.code === 200 ? this.allowedTtlMs : this.refusedTtlMs;
      this.cache.set(key, { until: now + ttl, decision });
    }
    return decision;
  }

  private async review(token: string, verb: string, urlPath: string): Promise<Decision> {
    let user: UserInfo;
    try {
      const review = await this.client.request<TokenReview>("POST", TOKEN_REVIEWS_PATH, {
        body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
      });
      if (!review.status?.authenticated || !review.status.user) {
        return { code: 401, message: "Unauthorized: the token was not authenticated" };
      }
      user = review.status.user;
    } catch (err) {
      return { code: 500, message: `the TokenReview failed: ${errorMessage(err)}` };
    }
    try {
      const review = await this.client.request<SubjectAccessReview>("POST", SUBJECT_ACCESS_REVIEWS_PATH, {
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: user.username,
            uid: user.uid,
            groups: user.groups,
            extra: user.extra,
            nonResourceAttributes: { path: urlPath, verb },
          },
        },
      });
      if (review.status?.allowed) return { code: 200, message: "allowed" };
      const why = review.status?.reason ? `: ${review.status.reason}` : "";
      return {
        code: 403,
        message: `Forbidden: user "${user.username ?? ""}" may not ${verb} ${urlPath}${why}`,
      };
    } catch (err) {
      return { code: 500, message: `the SubjectAccessReview failed: ${errorMessage(err)}` };
    }
  }
}

/**
 * The certificate and key in a directory (a mounted kubernetes.io/tls Secret), read again by the caller when they
 * are rotated; throws when either is unreadable or they don't make a usable pair.
 */
export function readTlsMaterial(dir: string, certName = DEFAULT_CERT_NAME, keyName = DEFAULT_KEY_NAME): TlsMaterial {
  const read = (name: string, what: string) => {
    const file = path.join(dir, name);
    try {
      return readFileSync(file, "utf8");
    } catch (err) {
      throw new Error(`cannot read the ${what} ${file}: ${errorMessage(err)}`, { cause: err });
    }
  };
  const material = { cert: read(certName, "certificate"), key: read(keyName, "private key") };
  try {
    tls.createSecureContext(material);
  } catch (err) {
    throw new Error(
      `${path.join(dir, certName)} and ${keyName} are not a usable certificate and key: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
  return material;
}

/**
 * A self-signed certificate for when no --metrics-cert-dir is given, as controller-runtime makes one: scrapers
 * then skip verification (insecureSkipVerify) but the token still travels encrypted.
 */
export function selfSignedTlsMaterial(names: string[] = defaultHostNames()): TlsMaterial {
  return selfSignedCertificate(names, SELF_SIGNED_DAYS);
}

function defaultHostNames(): string[] {
  return [...new Set([os.hostname(), "localhost", "127.0.0.1", "::1"])];
}
