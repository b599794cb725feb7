/**
 * Exit statuses of every command and of the worker: 0 done, 1 the work failed, 2 bad arguments or
 * configuration, 75 a temporary failure (EX_TEMPFAIL): the same command started again later may
 * succeed (a worker that lost its job pool, a schema whose release's migration has yet to run).
 */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_TEMPFAIL = 75;
