-- Every migration applied, for roles that may not read schema_migrations: a program checks at its
-- start that each migration of its code is among them, and that none it does not know is marked
-- `--! breaking-change` (src/db/schema-version.ts). SECURITY DEFINER, to read schema_migrations
-- with its owner's rights (batch_admin's, sql/schema-owner.sql); it reads nothing else, and takes
-- only an ACCESS SHARE lock on that table. sql/roles.sql grants it. batch_schema_version() stays:
-- the programs of earlier releases call it.
CREATE FUNCTION batch_applied_migrations()
  RETURNS TABLE (version INTEGER, name TEXT, breaking BOOLEAN)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT m.version, m.name, m.breaking FROM public.schema_migrations m ORDER BY m.version
$$;
REVOKE ALL ON FUNCTION batch_applied_migrations() FROM PUBLIC;
