-- When an administrator last lifted the user's sign-in throttle (ticks; 0 = never). A
-- running server forgets the user's failed sign-ins when it sees this move.
ALTER TABLE users ADD COLUMN unlocked_at INTEGER NOT NULL DEFAULT 0;
