import fs from "node:fs";
import path from "node:path";
import { CommandError } from "../base/command-error";
import type { JobDefinition } from "./define";

/**
 * The jobs of this deployment: every module of jobs/ whose default export is a defineJob(...).
 * Found in the directory the process hands in (src/config/context.ts: JOBS_DIR, else the
 * project's), so that adding a job is adding a file.
 */

/** The job `npm start` and the commands run when none is named. */
export const DEFAULT_JOB = "users";

export class UnknownJobError extends CommandError {
  override name = "UnknownJobError";
}

export class JobCatalog {
  private readonly byName: Map<string, JobDefinition>;

  /** `source`: where the jobs came from, as a message names it. */
  constructor(
    jobs: JobDefinition[],
    private readonly source = "jobs/",
  ) {
    this.byName = new Map();
    const stateOwners = new Map<string, string>();
    for (const job of jobs) {
      if (this.byName.has(job.name)) throw new Error(`two jobs are named ${job.name}`);
      this.byName.set(job.name, job);
      // two jobs recording their state in the same columns would take each other's rows for done
      const state = `${job.schema}.${job.table}.${job.state.status}`;
      const owner = stateOwners.get(state);
      if (owner) {
        throw new Error(
          `jobs ${owner} and ${job.name} keep their state in the same columns of ${job.schema}.${job.table}: give one a state prefix of its own`,
        );
      }
      stateOwners.set(state, job.name);
    }
  }

  get jobs(): JobDefinition[] {
    return [...this.byName.values()];
  }

  get(name: string): JobDefinition {
    const job = this.byName.get(name);
    if (!job) {
      const known = [...this.byName.keys()].join(", ") || "none";
      throw new UnknownJobError(
        `no job named ${JSON.stringify(name)} in ${this.source} (this deployment has: ${known})`,
      );
    }
    return job;
  }
}

function isJobDefinition(value: unknown): value is JobDefinition {
  const job = value as Partial<JobDefinition> | undefined;
  return typeof job?.name === "string" && typeof job.process === "function" && Array.isArray(job.reads);
}

/** Job modules in `dir`: compiled ones, or TypeScript ones where they run from source. */
function jobModules(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((file) => /\.(js|ts)$/.test(file) && !file.endsWith(".d.ts") && !/\.test\.[jt]s$/.test(file))
    .sort()
    .map((file) => path.join(dir, file));
}

/** The jobs of the modules in `dir`, named `source` in messages. */
export function loadCatalog(dir: string, source?: string): JobCatalog {
  const jobs: JobDefinition[] = [];
  for (const file of jobModules(dir)) {
    const exported = require(file);
    const job = exported?.default ?? exported;
    if (!isJobDefinition(job)) {
      throw new Error(`${path.relative(process.cwd(), file)} does not export a job: export default defineJob({ ... })`);
    }
    jobs.push(job);
  }
  return new JobCatalog(jobs, source);
}
