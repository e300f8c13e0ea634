"""Reports, CSV exports, health and metrics: read-only views over the message table.

The reports page reads a daily roll-up (``DailyStat``) kept by ``rollup.refresh``, a
periodic task, so it stays fast on tens of millions of messages; "what is stuck now" is
read live from the message table's indexes.
"""
