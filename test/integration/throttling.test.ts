// 429s from API Priority and Fairness are not failures: a squeezed operator and audit CLI finish (test/throttling.ts;
// make test-faults runs the same with 2,000 Services).
import { useControlPlane } from "../helpers.js";
import { SQUEEZED_USER, throttledRollout } from "../throttling.js";

describe("API Priority and Fairness squeezing the operator's user", function () {
  const env = useControlPlane({ families: "dual", users: [SQUEEZED_USER] });

  it("300 Services: six audits at once and a dual-stack rollout finish, the 429s retried", async function () {
    this.timeout(900_000);
    await throttledRollout(env, 300);
  });
});
