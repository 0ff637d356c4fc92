-- A message can disappear: the provider's echo of our own reply, stored when it
-- overtook send-message's answer, gives way to the reply (app.record_send).
-- Clients that were shown that copy learn it is gone on the same inbox topic,
-- as they do for conversations.
create trigger messages_broadcast_deleted after delete on public.messages
  for each row execute function app.broadcast_inbox();
