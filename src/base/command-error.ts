import { EXIT_FAILED, EXIT_USAGE } from "./exit-status";

/**
 * An expected failure of a command (a file that did not import, an unknown run): its message is
 * enough, and says what to do. The entry point ends the process with `exitStatus`.
 */
export class CommandError extends Error {
  override name = "CommandError";
  readonly exitStatus: number = EXIT_FAILED;

  /** `lines`: one problem each, printed a line each (the message joins them). */
  constructor(
    message: string,
    readonly lines: string[] = [message],
  ) {
    super(message);
  }
}

/** Bad usage: reported in one line with exit status 2, like a configuration error. */
export class UsageError extends CommandError {
  override name = "UsageError";
  override readonly exitStatus = EXIT_USAGE;
}
