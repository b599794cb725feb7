import { column, defineJob } from "#pg-batch";

/**
 * The default job of `npm start` and the commands: validates each user,
 * normalises its email and derives its customer segment.
 */

const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function ageBand(age: number): string {
  if (age < 30) return "young";
  if (age < 50) return "middle";
  return "senior";
}

function salaryBand(salary: number): string {
  if (salary < 60_000) return "low";
  if (salary < 100_000) return "mid";
  return "high";
}

export default defineJob({
  name: "users",
  description: "normalise each user's email and derive its customer segment",
  table: "users",
  key: "id",
  reads: {
    name: column.text(),
    email: column.text(),
    age: column.integer().nullable(),
    salary: column.integer().nullable(),
    createdAt: column.timestamp("created_at").nullable(),
  },
  writes: {
    emailNormalized: column.text("email_normalized"),
    segment: column.text(),
  },
  // each state column named, as sql/migrations/001_users.sql created them, rather than a prefix
  state: {
    status: "batch_status",
    attempts: "attempts",
    error: "last_error",
    runId: "batch_id",
    processedAt: "processed_at",
  },
  touch: ["updated_at"],
  async process(user) {
    const email = user.email.trim().toLowerCase();
    if (!EMAIL_SHAPE.test(email)) throw new Error(`invalid email address: ${user.email}`);
    if (user.name.trim() === "") throw new Error("name is empty");
    if (user.age === null || user.age < 0 || user.age > 150) throw new Error(`age out of range: ${user.age}`);
    if (user.salary === null || user.salary < 0) throw new Error(`salary missing or negative: ${user.salary}`);
    return { emailNormalized: email, segment: `${ageBand(user.age)}-${salaryBand(user.salary)}` };
  },
});
