-- Old users keep NULLs in these verifier columns until their next password change.
ALTER TABLE users ADD COLUMN scram_sha1 TEXT;
ALTER TABLE users ADD COLUMN scram_sha256 TEXT;
ALTER TABLE users ADD COLUMN nt_hash TEXT;
