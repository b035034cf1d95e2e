-- Local accounts and machine keys (docs/identity.md). People of a plant with an OpenID provider sign in there and
-- have no row here; `npm start` and small sites use these.

CREATE TABLE holdfast.user_account (
  username        text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  display_name    text NOT NULL,
  -- argon2id (PHC string with its own salt and parameters): slow on purpose, as a password is guessable.
  password_hash   text NOT NULL,
  roles           text[] NOT NULL,
  -- NULL: every site (admins).
  sites           text[],
  disabled        boolean NOT NULL DEFAULT false,
  failed_sign_ins integer NOT NULL DEFAULT 0,
  locked_until    timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE holdfast.api_key (
  -- The public part, shown with the key (hfk_<id>_<secret>) and in every audit record the key causes.
  id            text PRIMARY KEY,
  name          text NOT NULL,
  -- SHA-256 of the secret, hex. The secret is 32 random bytes: nothing to guess, so a fast hash is enough and a slow
  -- one (argon2) would only cost every machine request tens of milliseconds.
  secret_sha256 text NOT NULL,
  roles         text[] NOT NULL DEFAULT '{}',
  site          text NOT NULL,
  line          text,
  station       text,
  actions       text[] NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz,
  rotated_from  text REFERENCES holdfast.api_key (id),
  CHECK (station IS NULL OR line IS NOT NULL)
);
