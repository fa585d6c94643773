-- An owner's keys, newest first, page by page: listing walks this index
-- from a cursor instead of sorting all of the owner's keys.
CREATE INDEX api_keys_owner_id ON api_keys (owner, id);
DROP INDEX api_keys_owner;
