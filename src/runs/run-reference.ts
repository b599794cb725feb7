import type { PoolClient } from "pg";
import { CommandError } from "../base/command-error";
import type { Run } from "./model";
import { findRunByName, getRun } from "./runs";

/**
 * How commands (`status`, `batch pause` ...) name a run. `#12` is run 12, always. Anything else
 * is a name; a bare number that no run has as its name is taken as an id, as it always was. A
 * reference never hides a run: a number that is one run's name and another run's id is refused,
 * with the `#id` of each.
 */

const ID_REFERENCE = /^#(\d{1,9})$/;
const BARE_ID = /^\d{1,9}$/;

/** Whether a batch name would read as an id reference: such names are refused at start. */
export function isIdReference(name: string): boolean {
  return ID_REFERENCE.test(name);
}

/** A number that is one run's name and another run's id. */
export class AmbiguousRunReferenceError extends CommandError {
  override name = "AmbiguousRunReferenceError";
}

/** The run `reference` names; undefined when there is none. */
export async function findRun(client: PoolClient, reference: string): Promise<Run | undefined> {
  const id = ID_REFERENCE.exec(reference)?.[1];
  if (id !== undefined) return getRun(client, Number(id));
  const byName = await findRunByName(client, reference);
  if (!BARE_ID.test(reference)) return byName;
  const byId = await getRun(client, Number(reference));
  if (byName && byId && byName.id !== byId.id) {
    throw new AmbiguousRunReferenceError(
      `${JSON.stringify(reference)} is the name of batch run ${byName.id} and the id of batch run ${byId.id} ` +
        `(${JSON.stringify(byId.name)}): say #${byName.id} or #${byId.id}`,
    );
  }
  return byName ?? byId;
}
