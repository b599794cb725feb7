/**
 * The rows a slice has claimed: the records the job's function is given (its key and the
 * columns it reads, by property), and beside them, by index, what the slice keeps of each row,
 * out of the job's reach. Arrays side by side: a row costs no object of its own but its record.
 */
export class ClaimedRows {
  readonly records: Record<string, unknown>[] = [];
  /** The key's text: exact whatever the key's type, and what the outcome is written to. */
  readonly keys: string[] = [];
  readonly statuses: string[] = [];
  readonly runs: (number | null)[] = [];
  /** Attempts recorded before this one. */
  readonly attempts: number[] = [];
  /** Why a row could not be read into a record (a value its kind cannot hold), by index: it fails unprocessed. */
  readonly unreadable = new Map<number, string>();

  get length(): number {
    return this.records.length;
  }

  /** The rows at `indexes`, in that order, as rows of their own. */
  pick(indexes: readonly number[]): ClaimedRows {
    const picked = new ClaimedRows();
    for (const index of indexes) {
      const unreadable = this.unreadable.get(index);
      if (unreadable !== undefined) picked.unreadable.set(picked.length, unreadable);
      picked.records.push(this.records[index] as Record<string, unknown>);
      picked.keys.push(this.keys[index] as string);
      picked.statuses.push(this.statuses[index] as string);
      picked.runs.push(this.runs[index] ?? null);
      picked.attempts.push(this.attempts[index] as number);
    }
    return picked;
  }
}
