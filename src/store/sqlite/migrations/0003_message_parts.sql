-- A message's extension parts (`extra`) belong to the gateway that took the post in; only
-- that gateway renders them. Every stored message so far came through the Lync gateway.
-- A constant default makes this O(1): SQLite does not rewrite the table.
ALTER TABLE messages ADD COLUMN extra_gateway TEXT NOT NULL DEFAULT 'lync';
