"""Cron schedules: the pure maths (``cron``, ``plan``), their rows (``state/schedules.py``), the
beat tick's sweep and the client calls (``runtime/schedules.py``, ``client.py``)."""
