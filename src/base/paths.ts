import fs from "node:fs";
import path from "node:path";

/** The project root, found from this file whether it runs compiled (dist/src) or from source. */
function findRoot(start: string): string {
  let dir = start;
  while (!fs.existsSync(path.join(dir, "sql", "migrations"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the project's sql/migrations above ${start}`);
    dir = parent;
  }
  return dir;
}

export const PROJECT_ROOT = findRoot(__dirname);
export const MIGRATIONS_DIR = path.join(PROJECT_ROOT, "sql", "migrations");
export const SCHEMA_OWNER_FILE = path.join(PROJECT_ROOT, "sql", "schema-owner.sql");
export const ROLES_FILE = path.join(PROJECT_ROOT, "sql", "roles.sql");
/** The deployment's jobs: compiled beside the code (dist/jobs), or jobs/ where the code runs from source. */
export const JOBS_DIR = path.join(PROJECT_ROOT, __filename.endsWith(".js") ? "dist" : "", "jobs");
