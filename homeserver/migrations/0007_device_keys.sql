-- The device key directory: each device's MLS signature public key (Ed25519, 32 bytes).
-- It is bound at the device's first use of a key on this server (its first KeyPackage
-- upload or the first group it creates) and never changes afterwards: every KeyPackage
-- the device uploads and every leaf naming it in a group must carry this key. NULL until
-- then; such devices are left out of the directory and cannot be added to groups.
ALTER TABLE devices ADD COLUMN mls_signature_key BYTEA
    CHECK (mls_signature_key IS NULL OR length(mls_signature_key) = 32);
