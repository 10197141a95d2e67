// The full size of the API Priority and Fairness test (test/throttling.ts): 2,000 Services.
import { useControlPlane } from "../helpers.js";
import { SQUEEZED_USER, throttledRollout } from "../throttling.js";

describe("API Priority and Fairness squeezing the operator's user, at 2,000 Services", function () {
  const env = useControlPlane({ families: "dual", users: [SQUEEZED_USER] });

  it("six audits at once and a dual-stack rollout of 2,000 Services finish, the 429s retried", async function () {
    this.timeout(1_800_000);
    await throttledRollout(env, 2000);
  });
});
