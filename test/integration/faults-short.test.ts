// A short run of the fault suite for `make test`; `make test-faults` runs it in full (test/faults/faults.test.ts).
import { faultScenario } from "../faults/scenario.js";

faultScenario({
  title: "fault suite (short): 15 Services, as the ServiceAccount of config/rbac",
  services: 15,
  namespaces: 2,
  randomKills: 10,
  hookKills: "each",
  failovers: 2,
  apiServerRestarts: 1,
});
