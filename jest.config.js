const os = require("node:os");

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.ts$": [
      "@swc/jest",
      { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } },
    ],
  },
  // the job API's entry from source, as the modules the tests import beside it: one copy of its classes
  moduleNameMapper: { "^#pg-batch$": "<rootDir>/src/index.ts" },
  globalSetup: "<rootDir>/test/support/global-setup.ts",
  globalTeardown: "<rootDir>/test/support/global-teardown.ts",
  // every test file works in a database of its own, so files run side by side
  maxWorkers: Math.max(2, os.availableParallelism()),
  testTimeout: 120_000,
};
