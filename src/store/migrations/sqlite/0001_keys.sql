-- API keys. Only a hash of each key is kept; no column holds the key itself.
-- Times are UTC, as integer microseconds since the Unix epoch.
CREATE TABLE api_keys (
    id             TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    owner          TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    display_prefix TEXT    NOT NULL,
    key_hash       BLOB    NOT NULL CHECK (length(key_hash) = 32),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    last_used_at   INTEGER,
    revoked_at     INTEGER,
    revoked_reason TEXT,
    -- NULL: every scope; otherwise a JSON array of scope names.
    scopes         TEXT    CHECK (scopes IS NULL OR json_type(scopes) = 'array'),
    metadata       TEXT    NOT NULL DEFAULT 'null' CHECK (json_valid(metadata)),
    -- The key's own request allowance: both NULL (the default) or both set.
    rate_limit_requests  INTEGER CHECK (rate_limit_requests > 0),
    rate_limit_window_ms INTEGER CHECK (rate_limit_window_ms > 0),
    CHECK ((rate_limit_requests IS NULL) = (rate_limit_window_ms IS NULL))
) STRICT;

CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_owner ON api_keys (owner, created_at, id);

-- The change log caches follow. Triggers append to it in the statement's own
-- transaction, so a change made by hand in SQL reaches the caches too.
CREATE TABLE api_key_changes (
    seq      INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    key_id   TEXT    NOT NULL,
    key_hash BLOB    NOT NULL,
    at       INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER))
) STRICT;

CREATE TRIGGER api_keys_log_insert AFTER INSERT ON api_keys
BEGIN
    INSERT INTO api_key_changes (key_id, key_hash) VALUES (NEW.id, NEW.key_hash);
END;

-- Any change but a new last-used time.
CREATE TRIGGER api_keys_log_update AFTER UPDATE ON api_keys
WHEN OLD.id IS NOT NEW.id
  OR OLD.owner IS NOT NEW.owner
  OR OLD.name IS NOT NEW.name
  OR OLD.display_prefix IS NOT NEW.display_prefix
  OR OLD.key_hash IS NOT NEW.key_hash
  OR OLD.created_at IS NOT NEW.created_at
  OR OLD.expires_at IS NOT NEW.expires_at
  OR OLD.revoked_at IS NOT NEW.revoked_at
  OR OLD.revoked_reason IS NOT NEW.revoked_reason
  OR OLD.scopes IS NOT NEW.scopes
  OR OLD.metadata IS NOT NEW.metadata
  OR OLD.rate_limit_requests IS NOT NEW.rate_limit_requests
  OR OLD.rate_limit_window_ms IS NOT NEW.rate_limit_window_ms
BEGIN
    INSERT INTO api_key_changes (key_id, key_hash) VALUES (OLD.id, OLD.key_hash);
    INSERT INTO api_key_changes (key_id, key_hash)
        SELECT NEW.id, NEW.key_hash WHERE NEW.key_hash IS NOT OLD.key_hash;
END;

CREATE TRIGGER api_keys_log_delete AFTER DELETE ON api_keys
BEGIN
    INSERT INTO api_key_changes (key_id, key_hash) VALUES (OLD.id, OLD.key_hash);
END;
