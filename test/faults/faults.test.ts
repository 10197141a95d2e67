// The full fault suite (`make test-faults`); test/integration/faults-short.test.ts runs the same with small counts.
import { faultScenario } from "./scenario.js";

faultScenario({
  title: "fault suite (full): 50 Services, as the ServiceAccount of config/rbac",
  services: 50,
  namespaces: 3,
  randomKills: 100,
  hookKills: "all",
  failovers: 20,
  apiServerRestarts: 2,
});
