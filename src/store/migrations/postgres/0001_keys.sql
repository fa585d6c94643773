-- API keys. Only a hash of each key is kept; no column holds the key itself.
-- Runs with search_path set to the store's schema.
CREATE TABLE api_keys (
    id             uuid        PRIMARY KEY,
    owner          text        NOT NULL,
    name           text        NOT NULL,
    display_prefix text        NOT NULL,
    key_hash       bytea       NOT NULL CHECK (octet_length(key_hash) = 32),
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz,
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    revoked_reason text,
    -- NULL: every scope; otherwise a JSON array of scope names.
    scopes         jsonb       CHECK (scopes IS NULL OR jsonb_typeof(scopes) = 'array'),
    metadata       jsonb       NOT NULL DEFAULT 'null',
    -- The key's own request allowance: both NULL (the default) or both set.
    rate_limit_requests  bigint CHECK (rate_limit_requests > 0),
    rate_limit_window_ms bigint CHECK (rate_limit_window_ms > 0),
    CHECK ((rate_limit_requests IS NULL) = (rate_limit_window_ms IS NULL))
);

CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_owner ON api_keys (owner, created_at, id);

-- The change log caches follow. A trigger appends to it in the writing
-- transaction, so a change made by hand in SQL reaches the caches too.
CREATE TABLE api_key_changes (
    seq      bigserial   PRIMARY KEY,
    key_id   uuid        NOT NULL,
    key_hash bytea       NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION api_keys_log_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    last_seq bigint;
BEGIN
    -- One writer of the log at a time. Sequence numbers are handed out in
    -- the order transactions take this lock, and the lock is held until
    -- commit, so they become visible in order: a reader that has seen
    -- number N can never later find a change numbered below N.
    LOCK TABLE api_key_changes IN EXCLUSIVE MODE;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO api_key_changes (key_id, key_hash)
            VALUES (NEW.id, NEW.key_hash) RETURNING seq INTO last_seq;
    ELSE
        INSERT INTO api_key_changes (key_id, key_hash)
            VALUES (OLD.id, OLD.key_hash) RETURNING seq INTO last_seq;
        IF TG_OP = 'UPDATE' AND NEW.key_hash IS DISTINCT FROM OLD.key_hash THEN
            INSERT INTO api_key_changes (key_id, key_hash)
                VALUES (NEW.id, NEW.key_hash) RETURNING seq INTO last_seq;
        END IF;
    END IF;
    -- Delivered at commit. One channel for the database; the payload names
    -- the schema, so stores in other schemas ignore it.
    PERFORM pg_notify('api_key_changes', TG_TABLE_SCHEMA || ' ' || last_seq);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_log_insert_delete
    AFTER INSERT OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_log_change();

-- Any change but a new last-used time.
CREATE TRIGGER api_keys_log_update
    AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN ((OLD.id, OLD.owner, OLD.name, OLD.display_prefix, OLD.key_hash,
           OLD.created_at, OLD.expires_at, OLD.revoked_at, OLD.revoked_reason,
           OLD.scopes, OLD.metadata, OLD.rate_limit_requests, OLD.rate_limit_window_ms)
          IS DISTINCT FROM
          (NEW.id, NEW.owner, NEW.name, NEW.display_prefix, NEW.key_hash,
           NEW.created_at, NEW.expires_at, NEW.revoked_at, NEW.revoked_reason,
           NEW.scopes, NEW.metadata, NEW.rate_limit_requests, NEW.rate_limit_window_ms))
    EXECUTE FUNCTION api_keys_log_change();
