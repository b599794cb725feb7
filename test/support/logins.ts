import { randomBytes } from "node:crypto";
import type { TestDatabase } from "./database";

export interface Login {
  user: string;
  password: string;
  /** The test database's URL as this login. */
  url: string;
}

/** A login role in `group` with a real password. Roles are the server's: drop it with dropLogin. */
export async function loginAs(db: TestDatabase, group: string): Promise<Login> {
  const user = `${group}_${randomBytes(4).toString("hex")}`;
  const password = randomBytes(18).toString("base64url");
  await db.pool.query(`CREATE ROLE ${user} LOGIN PASSWORD '${password}' IN ROLE ${group}`);
  const url = new URL(db.url);
  url.username = user;
  url.password = password;
  return { user, password, url: url.toString() };
}

/** Drops a login of loginAs, and what it owns or was granted in the test database. */
export async function dropLogin(db: TestDatabase, login: Login): Promise<void> {
  await db.pool.query(`DROP OWNED BY ${login.user}; DROP ROLE ${login.user}`);
}
