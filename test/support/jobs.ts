import { DEFAULT_JOB, getCatalog } from "../../src/jobs/catalog";

/** The original's job (jobs/users.ts), which most tests run. */
export const usersJob = getCatalog().get(DEFAULT_JOB);
