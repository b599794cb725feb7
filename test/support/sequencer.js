const path = require("node:path");
const Sequencer = require("@jest/test-sequencer").default;

/**
 * The test files that run longest, longest first (each a minute or more on a quiet 2-core
 * machine): jest starts them first when it has no timings of its own, as in a fresh clone and in
 * CI, instead of ordering by file size, which puts small long files last and lets them run
 * alone at the end. test/unit/tiers.test.ts checks that each still exists.
 */
const LONGEST_FIRST = [
  "test/system/bench-beside.test.ts",
  "test/system/bench.test.ts",
  "test/system/autoscaler.test.ts",
  "test/system/autoscaler-faults.test.ts",
  "test/system/throttle.test.ts",
  "test/system/rate-limit.test.ts",
  "test/system/image.test.ts",
  "test/system/database-outage.test.ts",
  "test/system/database-restart.test.ts",
];

class LongestFirst extends Sequencer {
  sort(tests) {
    const sorted = super.sort(tests);
    // jest's own timings, from an earlier run on this machine, order better than a list
    if (sorted.some((test) => this.time(test) != null)) return sorted;
    const rank = (test) => {
      const index = LONGEST_FIRST.indexOf(path.relative(test.context.config.rootDir, test.path));
      return index === -1 ? LONGEST_FIRST.length : index;
    };
    return sorted
      .map((test, order) => ({ test, order }))
      .sort((a, b) => rank(a.test) - rank(b.test) || a.order - b.order)
      .map(({ test }) => test);
  }
}

module.exports = LongestFirst;
module.exports.LONGEST_FIRST = LONGEST_FIRST;
