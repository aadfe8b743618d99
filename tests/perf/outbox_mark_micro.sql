-- The outbox's write and mark, one event a transaction (the relay keeping up), on the server alone (issue 17, branch
-- outboxhot). psql -v v=VARIANT -f this: base = kit0003's indexes; drop1 = only ix_kit_outbox_sent_at dropped;
-- cte = kit0004 queued by a data-modifying WITH; trg = kit0004 queued by a row trigger (trgs: a statement trigger).
-- Prints WAL bytes an event (EXPLAIN WAL, 3,000 events) and times; outbox_mark_micro.py measures the backend's CPU.
\set ON_ERROR_STOP 1
SET synchronous_commit = off;  -- CPU and WAL, not fsync
DROP TABLE IF EXISTS ob, obp CASCADE;
CREATE TABLE ob (id bigserial PRIMARY KEY, event_id varchar(36) UNIQUE NOT NULL, event_type varchar(64) NOT NULL,
  payload text NOT NULL, headers text NOT NULL, created_at timestamptz NOT NULL, sent_at timestamptz,
  attempts int NOT NULL, last_error text);
CREATE TABLE obp (id bigint PRIMARY KEY);
CREATE OR REPLACE FUNCTION obq() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO obp VALUES (NEW.id); RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION obqs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO obp SELECT id FROM added; RETURN NULL; END $$;
SELECT CASE WHEN :'v' = 'drop1' THEN 'CREATE INDEX ob_unsent ON ob (id) WHERE sent_at IS NULL'
            WHEN :'v' = 'base' THEN 'CREATE INDEX ob_sent ON ob (sent_at); CREATE INDEX ob_unsent ON ob (id) WHERE sent_at IS NULL'
            WHEN :'v' = 'trg' THEN 'CREATE TRIGGER ob_queue AFTER INSERT ON ob FOR EACH ROW EXECUTE FUNCTION obq()'
            WHEN :'v' = 'trgs' THEN 'CREATE TRIGGER ob_queue AFTER INSERT ON ob REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION obqs()'
            ELSE 'SELECT 1' END AS ddl \gset
:ddl;
CREATE OR REPLACE PROCEDURE run(v text, n int, wal bool) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; ins interval := '0'; mk interval := '0'; new_id bigint; j json; wi bigint := 0; wm bigint := 0;
  ins_sql text; mark_sql text; tall timestamptz := clock_timestamp();
BEGIN
  ins_sql := CASE v WHEN 'cte' THEN
      'WITH e AS (INSERT INTO ob (event_id, event_type, payload, headers, created_at, attempts) VALUES ($1, ''points_earned'', $2, ''{}'', now(), 0) RETURNING id) INSERT INTO obp SELECT id FROM e'
    ELSE 'INSERT INTO ob (event_id, event_type, payload, headers, created_at, attempts) VALUES ($1, ''points_earned'', $2, ''{}'', now(), 0)' END;
  mark_sql := CASE WHEN v IN ('base', 'drop1') THEN 'UPDATE ob SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1)'
    ELSE 'WITH p AS (DELETE FROM obp WHERE id = ANY($1)) UPDATE ob SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1)' END;
  FOR i IN 1..n LOOP
    IF wal THEN
      EXECUTE 'EXPLAIN (ANALYZE, WAL, TIMING OFF, COSTS OFF, FORMAT JSON) ' || ins_sql INTO j USING gen_random_uuid()::text, repeat('x', 250);
      wi := wi + (j->0->'Plan'->>'WAL Bytes')::bigint;
      COMMIT;
      SELECT max(id) INTO new_id FROM ob;
      EXECUTE 'EXPLAIN (ANALYZE, WAL, TIMING OFF, COSTS OFF, FORMAT JSON) ' || mark_sql INTO j USING ARRAY[new_id];
      wm := wm + (j->0->'Plan'->>'WAL Bytes')::bigint;
      COMMIT;
    ELSE
      t0 := clock_timestamp();
      EXECUTE ins_sql USING gen_random_uuid()::text, repeat('x', 250);
      ins := ins + (clock_timestamp() - t0);
      COMMIT;
      SELECT max(id) INTO new_id FROM ob;
      t0 := clock_timestamp();
      EXECUTE mark_sql USING ARRAY[new_id];
      mk := mk + (clock_timestamp() - t0);
      COMMIT;
    END IF;
  END LOOP;
  IF wal THEN RAISE NOTICE '% wal bytes/event: insert % mark %', v, round(wi::numeric / n), round(wm::numeric / n);
  ELSE RAISE NOTICE '% us/event: insert % mark % all (two commits, the max(id)) %', v, round(extract(epoch from ins) * 1e6 / n, 1), round(extract(epoch from mk) * 1e6 / n, 1), round(extract(epoch from clock_timestamp() - tall) * 1e6 / n, 1);
  END IF;
END $$;
CALL run(:'v', 3000, true);
CALL run(:'v', 20000, false);
SELECT :'v' AS v, n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'ob';
SELECT pg_stat_force_next_flush();
