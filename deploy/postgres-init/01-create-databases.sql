-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d), as the
-- POSTGRES_USER superuser, connected to POSTGRES_DB. Each service owns its own database and never
-- reads the other's: identity_service -> rollcall_identity, import_service -> rollcall_import.
-- The tables themselves come from `identity-service migrate` / `import-service migrate`.
--
-- To re-run after changing this file: `docker compose -f deploy/compose.yaml down -v` (drops the data).
CREATE DATABASE rollcall_identity;
CREATE DATABASE rollcall_import;
