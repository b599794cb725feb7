/**
 * The SQL twin of jobs/users.ts: the job's per-row work done by PostgreSQL alone, one statement
 * per id range, for the pure-SQL ceiling (bench/ceiling.ts). It claims the range's claimable rows
 * (pending, or failed with attempts left) with FOR UPDATE SKIP LOCKED, as the reference
 * `limit` does, and writes every outcome column the job writes, as the worker's slice does:
 *
 *  - the job's validation, in its order and with its messages (a failing row is marked failed,
 *    its results left as they were);
 *  - email_normalized = lower(trim(email)), segment = the age band || '-' || the salary band;
 *  - batch_status, attempts + 1, last_error, batch_id, processed_at = now(), updated_at = now().
 *
 * Parameters: $1 < id <= $2, the run id $3 (batch_id), the attempts allowed $4.
 * Differences from the JavaScript: trim() strips spaces only (String.prototype.trim strips all
 * white space), and \s in the e-mail pattern is the locale's [[:space:]].
 */
export const USERS_SQL_TWIN = `
WITH claimed AS (
  SELECT t.id, t.email, t.name, t.age, t.salary, lower(trim(t.email)) AS email_normalized
    FROM users t
   WHERE t.id > $1 AND t.id <= $2
     AND (t.batch_status = 'pending' OR (t.batch_status = 'failed' AND t.attempts < $4))
     FOR UPDATE SKIP LOCKED
), outcome AS (
  SELECT c.id, c.email_normalized,
         CASE
           WHEN c.email_normalized !~ '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$' THEN 'invalid email address: ' || c.email
           WHEN trim(c.name) = '' THEN 'name is empty'
           WHEN c.age IS NULL OR c.age < 0 OR c.age > 150 THEN 'age out of range: ' || coalesce(c.age::text, 'null')
           WHEN c.salary IS NULL OR c.salary < 0 THEN 'salary missing or negative: ' || coalesce(c.salary::text, 'null')
         END AS error,
         CASE WHEN c.age < 30 THEN 'young' WHEN c.age < 50 THEN 'middle' ELSE 'senior' END || '-' ||
         CASE WHEN c.salary < 60000 THEN 'low' WHEN c.salary < 100000 THEN 'mid' ELSE 'high' END AS segment
    FROM claimed c
)
UPDATE users t
   SET batch_status = CASE WHEN o.error IS NULL THEN 'completed' ELSE 'failed' END,
       attempts = t.attempts + 1,
       last_error = o.error,
       email_normalized = CASE WHEN o.error IS NULL THEN o.email_normalized ELSE t.email_normalized END,
       segment = CASE WHEN o.error IS NULL THEN o.segment ELSE t.segment END,
       batch_id = $3,
       processed_at = now(),
       updated_at = now()
  FROM outcome o
 WHERE t.id = o.id AND t.id > $1 AND t.id <= $2`;

/**
 * A digest of every row's outcome, the key and run aside (rows in e-mail order): the same after
 * the job and after its twin when the twin does the job's work.
 */
export const USERS_OUTCOME_DIGEST = `
SELECT md5(string_agg(concat_ws('|', email, batch_status, attempts, last_error, email_normalized, segment), ','
                      ORDER BY email)) AS digest
  FROM users`;
