import { getCatalog } from "../../src/config/context";
import { DEFAULT_JOB } from "../../src/jobs/catalog";

/** The original's job (jobs/users.ts), which most tests run. */
export const usersJob = getCatalog().get(DEFAULT_JOB);
