"""Bot flows: chatbots that run inside conversations.

graph      the flow's graph: node kinds and their settings, edges, variables
validate   every problem of a graph, with the node it concerns
answers    checking a customer's answer to a question (number, e-mail, date …)
engine     the interpreter: a session advanced from its node until it waits or ends
runtime    live sessions: locking, triggers, sending through the inbox, the step log
flows      saving, publishing and reading flows under the caller's RLS
simulate   a flow run against scripted inputs, sending nothing
"""
