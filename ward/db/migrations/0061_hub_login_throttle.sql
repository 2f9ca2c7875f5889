-- Log-in throttling state, shared by every hub process (ward/hub/throttle.py decides,
-- ward/hub/logins.py reads and writes): failures counted per account (the user name tried,
-- whether or not it exists) and per client address, with the lock each has earned.
-- An attempt counts as a failure *before* its password is checked (and is forgiven on
-- success), under a row lock held for milliseconds, so parallel guesses cannot slip past.

CREATE TABLE hub_login_throttle (
    scope            text NOT NULL CHECK (scope IN ('account', 'address')),
    key              text NOT NULL,
    failures         integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_failure_at  timestamptz,
    locked_until     timestamptz,
    PRIMARY KEY (scope, key)
);
-- Rows whose failures are forgotten are deleted by age.
CREATE INDEX hub_login_throttle_last_failure ON hub_login_throttle (last_failure_at);
