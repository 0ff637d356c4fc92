"""Bot flows: chatbots that run inside conversations.

variables     a flow's variables: names, types, built-ins, `{{ name }}` in texts
nodes         the node kinds: their settings, ports, and the variables they read and write
graph         the flow's graph: schema version, limits, edges, the checked graph
validate      every problem of a graph, with the node it concerns (and the organization's)
graph_checks  the checks on a built graph: reachability, cycles, variables set before read
answers       checking a customer's answer to a question (number, e-mail, date …)
conditions    a condition node's filters, run as SQL
engine        the interpreter: a session advanced from its node until it waits or ends
host          the live host: what nodes do to the world, in the session's transaction
sessions      a session's row: the lock, begun, loaded with its engine, saved with its steps
inbound       inbound messages in order, one at a time per conversation; new conversations
sweep         the clock: delays resumed, idle sessions timed out
triggers      which flow a message or a new conversation starts
gate          whether an organization has anything for a bot to do (cached)
inline        the pass right after the webhook, on its delivery's messages
consumer      the events worker's bots consumer
sending       bot messages sent after the commit, in order
flows         saving, publishing, simulating and starting flows under the caller's RLS
session_log   reading sessions and their steps under the caller's RLS
simulate      a flow run against scripted inputs, sending nothing
"""
