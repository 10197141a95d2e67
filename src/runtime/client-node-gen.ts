// What @kubernetes/client-node's dist/config.js imports from its generated index (./gen/index.js), and nothing
// else: loadSlimClientNode (./startup.ts) resolves that import here. If a new client-node release imports more
// names, the operator fails at start with a SyntaxError naming the missing export (test/unit/startup.test.ts
// loads config.js this way on every `make test`).
export { createConfiguration } from "@kubernetes/client-node/dist/gen/configuration.js";
export { ServerConfiguration } from "@kubernetes/client-node/dist/gen/servers.js";
