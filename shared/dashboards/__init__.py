"""Dashboards of widgets over inbox, team, pipeline, campaign and contact metrics.

registry   the metrics: name → SQL builder, filter entity, dimensions, units
inbox, pipeline, audience   the metrics' SQL
sql        what their SQL shares: local-time buckets and ranges, dimensions, filters
ranges     date range presets and custom local dates; the two-year limit at day grain
definition a widget's question checked whole into a plan (a 422 naming what is wrong)
widgets    a widget's data: the plan run under the caller's RLS, shaped per visualization
store      dashboards and widgets under the caller's RLS
defaults   each role's default dashboard, seeded on first use
"""
