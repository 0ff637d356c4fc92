-- A message with no live session asks for its conversation's sessions (any, and the
-- latest: a handoff holds the conversation for the person it went to). By conversation,
-- newest first, rather than every session the organization ever had.
create index bot_sessions_conversation_idx
  on public.bot_sessions (organization_id, conversation_id, started_at desc);
