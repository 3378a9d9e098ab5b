"""Scheduling core for ``coatcheck serve``: cron expressions (``cron``), IANA time zones
(``zones``), pure firing decisions (``policy``) and the job-file tables (``fields``).
"""
