import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { stringify } from "yaml";
import { ConfigError, parseConfig } from "../../src/config/config";
import { makeCertificateAuthority } from "../../src/db/certificates";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "../../src/db/embedded";
import { quietLogger } from "../support/database";
import { renderDirectory } from "../support/manifests";
import { type Finished, lastJsonLine, ROOT, run, seed, WORKER_BIN } from "../support/processes";

/**
 * TLS to a database whose certificate a private CA signed, as a managed database's: a server of
 * the test's own with ssl on, accepting TLS connections only, its certificate signed by a CA
 * made at its start with openssl; another CA made here with openssl stands for the wrong one.
 */

const AUTOSCALER = path.join(ROOT, "dist/autoscaler/cli.js");

let db: EmbeddedDatabase;
let plainUrl: string;
let caFile: string;
let wrongCaFile: string;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "tls-test-"));
  [db, { certFile: wrongCaFile }] = await Promise.all([
    startEmbeddedPostgres(quietLogger, { tls: true }),
    makeCertificateAuthority(dir, "another-ca"),
  ]);
  caFile = db.caFile as string;
  plainUrl = db.url.split("?")[0] as string;
});

afterAll(async () => {
  await db?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The one line a failed command prints: no stack trace, no fatal log. */
function expectOneLine(finished: Finished, pattern: RegExp): void {
  expect(finished.code).not.toBe(0);
  const lines = finished.stderr.trim().split("\n");
  expect(lines.filter((line) => line.startsWith("error: ") || line.startsWith("configuration error: "))).toEqual([
    expect.stringMatching(pattern),
  ]);
  expect(finished.stderr).not.toMatch(/^\s+at /m);
  expect(finished.stderr).not.toMatch(/"level":60/);
}

describe("TLS to a database with a private CA", () => {
  it("the seed commands and a worker connect with verify-full to its CA, and a run completes", async () => {
    expect(db.url).toContain("sslmode=verify-full");
    const data = fs.mkdtempSync(path.join(dir, "data-"));
    // in the connection string
    const seeded = await seed(["all", "--rows", "300", "--out", data], { DATABASE_URL: db.url, CHUNK_SIZE: "100" });
    expect(seeded.code).toBe(0);
    expect(lastJsonLine(seeded.stdout)).toMatchObject({ enqueued: { rows: 300, chunks: 3 } });
    // in the environment, as the production overlay gives it
    const worker = await run(WORKER_BIN, ["--once"], {
      DATABASE_URL: plainUrl,
      PGSSLMODE: "verify-full",
      PGSSLROOTCERT: caFile,
    });
    expect(worker.code).toBe(0);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        "SELECT status, processed_records::int AS done FROM batch_jobs WHERE kind = 'process'",
      );
      expect(rows).toEqual([{ status: "completed", done: 300 }]);
    } finally {
      await client.end();
    }
  });

  it("with another CA, a command and a worker exit with one line naming sslrootcert", async () => {
    const wrongUrl = `${plainUrl}?sslmode=verify-full&sslrootcert=${wrongCaFile}`;
    const seeded = await seed(["schema"], { DATABASE_URL: wrongUrl });
    expectOneLine(seeded, /not signed by the CA of sslrootcert .*another-ca\.crt.*set sslrootcert .*PGSSLROOTCERT/);
    const worker = await run(WORKER_BIN, ["--once"], {
      DATABASE_URL: plainUrl,
      PGSSLMODE: "verify-full",
      PGSSLROOTCERT: wrongCaFile,
    });
    expectOneLine(worker, /not signed by the CA of sslrootcert .*another-ca\.crt/);
  });

  it("reads sslmode as libpq and KEDA do: require encrypts without a CA, and checks one where given", async () => {
    expect((await seed(["schema"], { DATABASE_URL: plainUrl, PGSSLMODE: "require" })).code).toBe(0);
    const wrong = await seed(["schema"], { DATABASE_URL: plainUrl, PGSSLMODE: "require", PGSSLROOTCERT: wrongCaFile });
    expectOneLine(wrong, /not signed by the CA of sslrootcert/);
    // no TLS at all: the server requires it
    expectOneLine(await seed(["schema"], { DATABASE_URL: plainUrl }), /accepts only TLS connections.*sslmode/);
  });

  it("refuses a root certificate it cannot read before connecting, with status 2", async () => {
    const missing = path.join(dir, "no-such-ca.crt");
    const finished = await seed(["schema"], {
      DATABASE_URL: plainUrl,
      PGSSLMODE: "verify-full",
      PGSSLROOTCERT: missing,
    });
    expect(finished.code).toBe(2);
    expectOneLine(finished, /DATABASE_URL: sslrootcert .*no-such-ca\.crt cannot be read \(ENOENT\)/);
  });
});

describe("the local autoscaler on the production overlay", () => {
  it("runs it with --embedded over TLS: the pods and the trigger verify the server against its CA", async () => {
    const rows = 2000;
    const podLogs = fs.mkdtempSync(path.join(dir, "pods-"));
    const finished = await run(
      process.execPath,
      [
        AUTOSCALER,
        "k8s/overlays/production",
        "--embedded",
        ...["--rows", String(rows), "--env", "CHUNK_SIZE=1000"],
        ...["--polling-interval", "1", "--until-idle", "2", "--duration", "90", "--pod-logs", podLogs],
      ],
      {},
    );
    expect(finished.stderr).not.toMatch(/"level":60/);
    expect(finished.code).toBe(0);
    expect(finished.stderr).toMatch(/the pods ask for TLS \(PGSSLMODE=verify-full\)/);
    const summary = lastJsonLine(finished.stdout) as Record<string, any>;
    expect(summary.runs).toEqual([
      { name: "users-batch", status: "completed", total: rows, completed: rows, failed: 0 },
    ]);
    expect(summary).toMatchObject({ stoppedBecause: "idle", podsFailed: 0 });
    expect(summary.timeline.every((poll: any) => poll.query !== null)).toBe(true);
  });
});

describe("the TLS settings of a connection string", () => {
  const url = "postgres://u:p@db.example.com:5432/app";
  it("takes the string's own, else PGSSLMODE and PGSSLROOTCERT, in libpq's meaning", () => {
    const fromEnv = parseConfig({ DATABASE_URL: url, PGSSLMODE: "verify-full", PGSSLROOTCERT: caFile });
    expect(fromEnv.databaseUrl).toBe(
      `${url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(caFile)}&uselibpqcompat=true`,
    );
    const own = parseConfig({
      DATABASE_URL: `${url}?sslmode=require`,
      PGSSLMODE: "verify-full",
      REPLICA_DATABASE_URL: url,
    });
    expect(own.databaseUrl).toBe(`${url}?sslmode=require&uselibpqcompat=true`);
    expect(own.throttle.replicaDatabaseUrl).toBe(`${url}?sslmode=verify-full&uselibpqcompat=true`);
    expect(parseConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
  });

  it("refuses a mode node-postgres cannot follow, and verify-ca without a CA", () => {
    expect(() => parseConfig({ DATABASE_URL: url, PGSSLMODE: "no-verify" })).toThrow(
      new ConfigError('PGSSLMODE must be one of disable, prefer, require, verify-ca, verify-full (got "no-verify")'),
    );
    expect(() => parseConfig({ DATABASE_URL: `${url}?sslmode=allow` })).toThrow(
      /DATABASE_URL .*sslmode=allow is not one of/,
    );
    expect(() => parseConfig({ DATABASE_URL: url, PGSSLMODE: "verify-ca" })).toThrow(
      /DATABASE_URL: sslmode=verify-ca needs sslrootcert/,
    );
  });
});

describe("the TLS component", () => {
  it("gives every pod of production, the dashboard's too when listed before it, verify-full and the mounted CA", () => {
    const dir = fs.mkdtempSync(path.join(ROOT, "k8s", ".tls-test-"));
    try {
      const components = ["dashboard", "database-tls"].map((name) => `../components/${name}`);
      fs.writeFileSync(
        path.join(dir, "kustomization.yaml"),
        stringify({ resources: ["../base"], components, namespace: "pg-batch" }),
      );
      const pods = renderDirectory(dir).flatMap((o: any) => {
        if (o.kind === "ScaledJob") return [o.spec.jobTargetRef.template.spec];
        return o.kind === "Deployment" || o.kind === "Job" ? [o.spec.template.spec] : [];
      });
      expect(pods.map((pod: any) => pod.containers[0].name).sort()).toEqual(["dashboard", "migrate", "worker"]);
      for (const pod of pods as any[]) {
        const env = pod.containers[0].env;
        expect(env).toEqual(
          expect.arrayContaining([
            { name: "PGSSLMODE", value: "verify-full" },
            { name: "PGSSLROOTCERT", value: "/etc/pg-batch/ca/ca.crt" },
          ]),
        );
        expect(pod.containers[0].volumeMounts).toContainEqual({
          name: "database-ca",
          mountPath: "/etc/pg-batch/ca",
          readOnly: true,
        });
        expect(pod.volumes).toContainEqual({ name: "database-ca", configMap: { name: "pg-batch-ca" } });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
