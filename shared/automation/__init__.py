"""Automation rules and conversation assignment: consumers of the events worker.

triggers      the events a rule can start on, and the records each one brings
conditions    a rule's conditions: the filter language over those records, run as SQL
actions       what a rule does, checked when saved
perform       running a rule's actions in the consumer's transaction
rules         saving and reading rules under the caller's RLS; dry runs
consumer      the `automation` consumer: rules per event, loop guard, run log
assignment    round-robin and balanced choice among available agents; availability
reassignment  a member offline or gone: their open conversations to others
sweep         task.overdue, which no row change makes (the automation-sweep job)
"""
