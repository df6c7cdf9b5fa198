-- Runs first: the extension, the search path every later file uses, and a helper that shows
-- an error's SQLSTATE, message and detail on one line (so error tests check the SQLSTATE).
CREATE EXTENSION IF NOT EXISTS pg_distcount;
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET search_path = public, distcount', current_database());
END $$;

CREATE FUNCTION public.error_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    state text; message text; detail text;
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
    RETURN state || ': ' || message || coalesce(' | ' || nullif(detail, ''), '');
END $$;

SELECT extname, extversion IS NOT NULL AS has_version, n.nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname = 'pg_distcount';
