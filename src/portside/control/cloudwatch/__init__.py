"""CloudWatch metrics: the operations of the ``monitoring`` API (api/cloudwatch.py routes to them)."""
