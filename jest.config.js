const os = require("node:os");

const transform = {
  "^.+\\.ts$": [
    "@swc/jest",
    { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } },
  ],
};

/** A tier: the test files under test/<name>/. Jest runs a global setup that tiers share once. */
function tier(name, needsPostgres) {
  return {
    displayName: name,
    testEnvironment: "node",
    roots: [`<rootDir>/test/${name}`],
    testMatch: ["**/*.test.ts"],
    transform,
    // the job API's entry from source, as the modules the tests import beside it: one copy of its classes
    moduleNameMapper: { "^#pg-batch$": "<rootDir>/src/index.ts" },
    ...(needsPostgres && {
      globalSetup: "<rootDir>/test/support/global-setup.ts",
      globalTeardown: "<rootDir>/test/support/global-teardown.ts",
    }),
  };
}

/** @type {import('jest').Config} */
module.exports = {
  // unit: neither PostgreSQL nor a build; db: a real PostgreSQL, in process; system: spawned
  // processes from dist/, other programs (Chromium, kubectl, PgBouncer, PostgreSQL servers)
  projects: [tier("unit", false), tier("db", true), tier("system", true)],
  // every test file works in a database of its own, so files run side by side; one more than
  // the cores, as a system test spends most of its time waiting on the processes it started
  maxWorkers: Math.max(3, os.availableParallelism() + 1),
  // the longest files first, where jest has no timings of its own
  testSequencer: "<rootDir>/test/support/sequencer.js",
  testTimeout: 120_000,
};
