-- The schema's version, for roles that may not read schema_migrations: a worker checks at its
-- start that every migration of its code is applied, and that no migration applied since is
-- marked `--! breaking-change` (src/db/preflight.ts). SECURITY DEFINER, to read
-- schema_migrations with its owner's rights (batch_admin's, sql/schema-owner.sql); it reads
-- nothing else, and takes only an ACCESS SHARE lock on that table. sql/roles.sql grants it.
CREATE FUNCTION batch_schema_version(
  OUT version INTEGER, OUT name TEXT, OUT breaking_version INTEGER, OUT breaking_name TEXT)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT latest.version, latest.name, breaking.version, breaking.name
    FROM (SELECT m.version, m.name FROM public.schema_migrations m ORDER BY m.version DESC LIMIT 1) AS latest
    LEFT JOIN (SELECT m.version, m.name FROM public.schema_migrations m
                WHERE m.breaking ORDER BY m.version DESC LIMIT 1) AS breaking ON true
$$;
REVOKE ALL ON FUNCTION batch_schema_version() FROM PUBLIC;
