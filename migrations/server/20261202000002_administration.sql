-- Administration for self-hosters: server administrators, disabled accounts and invite codes.

-- Administrators may create invites from a client. The `parlor-server admin` subcommands work
-- on the database directly and need no administrator account.
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1));
-- A disabled account cannot log in or authenticate; its sessions were revoked when it was
-- disabled. Enabling it again lets it log in with its password.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- Codes that let someone register while the server's registration policy is `invite`. Only a
-- hash of each code is stored, as with session tokens: the code is shown once, when created.
CREATE TABLE invites (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    code_hash   BLOB NOT NULL UNIQUE,
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,  -- NULL when made by `parlor-server admin`
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    uses_left   INTEGER NOT NULL CHECK (uses_left >= 0),
    revoked_at  INTEGER
);
