-- Kommo connected by OAuth 2.0 (a public integration's authorization code) as well
-- as by a long-lived token.
--
-- An OAuth connection's access token lives a day and is renewed with its refresh
-- token, which Kommo accepts once: both are kept with the access token's expiry
-- in `private.kommo_tokens` (out of PostgREST's reach, never returned). A
-- long-lived token has neither. Admins see which kind their connection is.

alter table public.kommo_connections
  add column auth text not null default 'token' check (auth in ('token', 'oauth'));

alter table private.kommo_tokens
  add column refresh_token text check (length(refresh_token) between 1 and 4096),
  add column expires_at timestamptz,
  add constraint kommo_tokens_refresh_check check ((refresh_token is null) = (expires_at is null));
