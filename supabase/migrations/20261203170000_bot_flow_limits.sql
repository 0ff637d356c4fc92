-- Bot flows count against the plan's `bot_flows` limit, like the other limited
-- tables (private.enforce_plan_limit, from the billing migration): the bots
-- migration came before billing, so the trigger is attached here.
create trigger bot_flows_plan_limit before insert on public.bot_flows
  for each row execute function private.enforce_plan_limit('bot_flows');
