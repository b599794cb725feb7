/**
 * The keys of the session advisory locks held now: a pool whose `lock_key` is among them has its
 * liveness session alive (a bigint key is held as classid:objid, objsubid 1).
 */
export const HELD_LOCK_KEYS = `
  SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l
   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1`;
