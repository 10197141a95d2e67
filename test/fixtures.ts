// Resource types that only the tests use.
import { core } from "../src/runtime/client.js";

export const CONFIGMAPS_FOR_TESTS = core("configmaps", "ConfigMap");
