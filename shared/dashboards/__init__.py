"""Dashboards of widgets over inbox, team, pipeline, campaign and contact metrics.

registry   the metrics: name → SQL builder, filter entity, dimensions, units
inbox, pipeline, audience   the metrics' SQL
sql        what their SQL shares: local-time buckets and ranges, dimensions, filters
ranges     date range presets and custom local dates; the two-year limit at day grain
widgets    a widget's definition checked whole, and its data shaped per visualization
store      dashboards and widgets under the caller's RLS
defaults   each role's default dashboard, seeded on first use
"""
