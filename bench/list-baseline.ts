// The audit benchmark's floor: a process that does nothing but read every Service with client-node's own API,
// 500 per page, as any Node client of the cluster would, then prints one JSON line and exits. It is timed from
// spawn like the operator, so both pay for Node's start and for loading client-node.
//   node list-baseline.js <kubeconfig>
import { CoreV1Api, KubeConfig, type V1Service } from "@kubernetes/client-node";

const loadedMs = performance.now();
// What Node with client-node loaded holds before any object: the fixed part of any Node client's RSS.
const rssAfterImportBytes = process.memoryUsage().rss;
const kc = new KubeConfig();
kc.loadFromFile(process.argv[2] ?? "");
const api = kc.makeApiClient(CoreV1Api);
const items: V1Service[] = [];
let pages = 0;
let continueToken: string | undefined;
const listStart = performance.now();
do {
  const page = await api.listServiceForAllNamespaces({ limit: 500, _continue: continueToken });
  // Kept, not dropped page by page: the operator holds what it read, and so does this floor.
  items.push(...page.items);
  continueToken = page.metadata?._continue || undefined;
  pages++;
} while (continueToken);
const doneMs = performance.now();
const cpu = process.cpuUsage();
process.stdout.write(
  JSON.stringify({
    items: items.length,
    pages,
    loadedMs,
    listMs: doneMs - listStart,
    sinceStartMs: doneMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssAfterImportBytes,
    rssBytes: process.memoryUsage().rss,
  }) + "\n",
);
