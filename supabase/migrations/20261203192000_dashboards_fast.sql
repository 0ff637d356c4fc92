-- Dashboards, faster at a million messages: covering indexes so the widgets that read raw
-- rows read an index only (no table rows per message, conversation or deal).
--
--   messages_dashboard_idx      a filtered messages widget's range of messages, with every
--                               column it groups or joins by (the filter itself reads
--                               conversations)
--   conversations_dashboard_idx each conversation's assignee and channel account, for the
--                               clocks' agent and channel dimensions and conversation filters

create index messages_dashboard_idx on public.messages (organization_id, created_at)
  include (direction, conversation_id, channel_account_id, sender_type, sender_id);

create index conversations_dashboard_idx on public.conversations (organization_id, id)
  include (assignee_id, channel_account_id, status);
