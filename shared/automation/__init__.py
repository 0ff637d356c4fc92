"""Automation rules and conversation assignment: consumers of the events worker.

triggers     the events a rule can start on, and the records each one brings
conditions   a rule's conditions: the filter language over those records, run as SQL
actions      what a rule does, checked when saved and run in the consumer's transaction
rules        saving and reading rules under the caller's RLS
assignment   round-robin and balanced choice among available agents; availability
consumer     the `automation` consumer: rules per event, loop guard, run log
"""
