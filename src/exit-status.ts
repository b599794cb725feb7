/** Exit statuses of every command and of the worker: 0 done, 1 the work failed, 2 bad arguments or configuration. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
