-- batch_admin, the owner of pg-batch's schema: created before the migrations, which run as it
-- (src/db/migrate.ts), so that every table, view, function and graphile-worker's schema they
-- create is batch_admin's and a later release, run by any member of batch_admin, may alter
-- them. Run by a user allowed to create roles (`npm run seed -- schema --roles` runs it first);
-- safe to run again, and by a member of batch_admin, who changes nothing here.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'batch_admin') THEN
    BEGIN
      CREATE ROLE batch_admin NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- created meanwhile by a concurrent run
    END;
  END IF;
END $$;

-- Nobody creates objects in public unless granted (PostgreSQL 15's default, made explicit where
-- this role may change it).
DO $$
BEGIN
  REVOKE CREATE ON SCHEMA public FROM PUBLIC;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'public schema left as it is: only its owner can revoke CREATE from PUBLIC';
END $$;

-- What the migrations create: tables in public, and graphile-worker's own schema. Where the user
-- running this may not grant them (a member of batch_admin on a later release), batch_admin
-- already has them.
DO $$
BEGIN
  EXECUTE format('GRANT CREATE ON DATABASE %I TO batch_admin', current_database());
  GRANT USAGE, CREATE ON SCHEMA public TO batch_admin;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'batch_admin''s rights on the database left as they are';
END $$;

-- The user setting the database up runs the first migrations: as batch_admin, so it must be a
-- member (a superuser is one already; PostgreSQL 16 gives the creator of a role only the right
-- to grant it).
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'batch_admin', 'MEMBER') THEN
    EXECUTE format('GRANT batch_admin TO %I', current_user);
  END IF;
END $$;
