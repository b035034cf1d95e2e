-- The audit trail (docs/audit-trail.md, 21 CFR Part 11 §11.10(e)): one row per create or change of Holdfast's records
-- and settings, append-only and hash-chained. Each row's hash is sha256(prev_hash || content), so a row changed,
-- removed or slipped in breaks the chain at that row; `npm run audit:verify` walks it.

-- The chain's head: one row, locked FOR UPDATE by every writer for the length of its transaction, so records get
-- gap-free sequence numbers in commit order and the chain never forks. Advanced only by the insert trigger below.
CREATE TABLE holdfast.audit_chain_head (
  id    boolean PRIMARY KEY DEFAULT true CHECK (id),
  seq   bigint NOT NULL,
  hash  text NOT NULL
);
INSERT INTO holdfast.audit_chain_head (seq, hash) VALUES (0, repeat('0', 64));

CREATE TABLE holdfast.audit_record (
  seq          bigint PRIMARY KEY CHECK (seq > 0),
  -- The record as hashed: canonical JSON (sorted keys, no whitespace), kept as text because the hash is over these
  -- exact bytes (jsonb would reorder keys and respell numbers).
  content      text NOT NULL,
  prev_hash    text NOT NULL,
  hash         text NOT NULL,
  -- Copies of content fields for the auditors' filters (GET /v1/audit); the trigger and the verifier hold them equal.
  recorded_at  timestamptz NOT NULL,
  actor_id     text NOT NULL,
  record_type  text NOT NULL,
  record_id    text NOT NULL
);
CREATE INDEX audit_record_record_idx ON holdfast.audit_record (record_id, seq);
CREATE INDEX audit_record_actor_idx ON holdfast.audit_record (actor_id, seq);
CREATE INDEX audit_record_time_idx ON holdfast.audit_record (recorded_at, seq);

-- Every insert must extend the chain exactly: the next seq, the head's hash as prev_hash, a hash that is right for its
-- content and filter columns that match it. A writer's bug (or a forger without the superuser's ability to switch
-- triggers off) gets an error, never a broken chain.
CREATE FUNCTION holdfast.audit_record_append() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  head holdfast.audit_chain_head%ROWTYPE;
  doc jsonb;
BEGIN
  SELECT * INTO head FROM holdfast.audit_chain_head FOR UPDATE;
  IF NEW.seq <> head.seq + 1 OR NEW.prev_hash <> head.hash THEN
    RAISE EXCEPTION 'audit record % does not extend the chain (head is record % with hash %)', NEW.seq, head.seq, head.hash;
  END IF;
  IF NEW.hash <> encode(sha256(convert_to(NEW.prev_hash || NEW.content, 'UTF8')), 'hex') THEN
    RAISE EXCEPTION 'audit record %: hash is not sha256(prev_hash || content)', NEW.seq;
  END IF;
  doc := NEW.content::jsonb;
  IF (doc ->> 'seq')::bigint IS DISTINCT FROM NEW.seq
     OR (doc ->> 'at')::timestamptz IS DISTINCT FROM NEW.recorded_at
     OR doc -> 'actor' ->> 'id' IS DISTINCT FROM NEW.actor_id
     OR doc ->> 'recordType' IS DISTINCT FROM NEW.record_type
     OR doc ->> 'recordId' IS DISTINCT FROM NEW.record_id THEN
    RAISE EXCEPTION 'audit record %: seq, recorded_at, actor_id, record_type or record_id differ from its content', NEW.seq;
  END IF;
  UPDATE holdfast.audit_chain_head SET seq = NEW.seq, hash = NEW.hash;
  RETURN NEW;
END $$;
CREATE TRIGGER audit_record_append BEFORE INSERT ON holdfast.audit_record
  FOR EACH ROW EXECUTE FUNCTION holdfast.audit_record_append();

-- Statement-level, so even an UPDATE or DELETE that matches no row is refused: nobody gets to try.
CREATE FUNCTION holdfast.audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% on holdfast.% refused: the audit trail is append-only', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON holdfast.audit_record
  FOR EACH STATEMENT EXECUTE FUNCTION holdfast.audit_refuse_change();
CREATE TRIGGER audit_chain_head_kept BEFORE INSERT OR DELETE OR TRUNCATE ON holdfast.audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION holdfast.audit_refuse_change();

-- The head moves only from inside the insert trigger (trigger depth 2), never by a statement of its own.
CREATE FUNCTION holdfast.audit_chain_head_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'UPDATE on holdfast.audit_chain_head refused: it moves only when an audit record is appended';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER audit_chain_head_advance BEFORE UPDATE ON holdfast.audit_chain_head
  FOR EACH ROW EXECUTE FUNCTION holdfast.audit_chain_head_advance();

-- Privileges as a second guard where they apply: the owner (the role running migrations) gives up its own UPDATE,
-- DELETE and TRUNCATE on the records, so an application connecting as a non-superuser owner is refused by the
-- privilege check before any trigger; a separate application role should be granted SELECT and INSERT only
-- (docs/audit-trail.md#who-can-change-what). A superuser bypasses privileges (the embedded PostgreSQL's Holdfast
-- connects as one): there the triggers are what refuses, and the chain and the anchors are what detects.
REVOKE UPDATE, DELETE, TRUNCATE ON holdfast.audit_record FROM PUBLIC, CURRENT_USER;
REVOKE DELETE, TRUNCATE ON holdfast.audit_chain_head FROM PUBLIC, CURRENT_USER;
