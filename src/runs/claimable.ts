/**
 * In SQL, whether a users row (of the given alias) is work for a run allowed `maxAttempts`
 * attempts: pending, or failed with attempts left.
 */
export const claimableSql = (alias: string, maxAttempts: string) =>
  `(${alias}.batch_status = 'pending' OR (${alias}.batch_status = 'failed' AND ${alias}.attempts < ${maxAttempts}))`;
